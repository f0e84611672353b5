//! Randomized tests of address spaces against a model.
