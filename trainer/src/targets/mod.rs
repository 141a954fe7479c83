//! Target assignment (CPU, no autograd).
