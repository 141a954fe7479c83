//! Differentiable box coders (burn tensor versions of the SDK coders).
