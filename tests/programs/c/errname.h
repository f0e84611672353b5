/*
 * errname.h: how the test programs print a failed call, shared by the
 * programs that compare their errnos with the host's. Included by path
 * ("errname.h" next to the program); every function is static and may
 * go unused.
 */
#ifndef ERRNAME_H
#define ERRNAME_H

#include <errno.h>
#include <stdio.h>

/* The symbolic name of errno value `e` ("errno N" for one not listed). */
__attribute__((unused)) static const char *errname(int e)
{
	static char buf[16];
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case EINVAL: return "EINVAL";
	case ENOSYS: return "ENOSYS";
	}
	snprintf(buf, sizeof buf, "errno %d", e);
	return buf;
}

/* A call's result: the number it returned, or errno's name if it
 * failed (the number lives in a static buffer until the next call). */
__attribute__((unused)) static const char *err(long r)
{
	static char b[32];
	if (r >= 0) {
		snprintf(b, sizeof b, "%ld", r);
		return b;
	}
	return errname(errno);
}

/* "label: N", or "label: -ENAME" for a call that returned -1. */
__attribute__((unused)) static void show(const char *label, long ret)
{
	if (ret == -1)
		printf("%s: -%s\n", label, errname(errno));
	else
		printf("%s: %ld\n", label, ret);
}

#endif
