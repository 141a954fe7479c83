//! Shared helpers for the loss and coder unit tests (test builds only).

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};

/// Plain CPU backend used by the tests.
pub type TB = burn::backend::Flex;
/// Autodiff backend used by the gradient tests.
pub type AD = burn::backend::Autodiff<TB>;

/// Default device of backend `B`.
pub fn dev<B: Backend>() -> B::Device {
    Default::default()
}

/// `[n]` float tensor from a slice.
pub fn t1<B: Backend>(v: &[f32]) -> Tensor<B, 1> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &dev::<B>())
}

/// `[rows, cols]` float tensor from a row-major slice.
pub fn t2<B: Backend>(v: &[f32], cols: usize) -> Tensor<B, 2> {
    assert_eq!(v.len() % cols, 0, "slice length is not a multiple of cols");
    Tensor::from_data(
        TensorData::new(v.to_vec(), [v.len() / cols, cols]),
        &dev::<B>(),
    )
}

/// Float tensor of any rank from a row-major slice and a shape.
pub fn tn<B: Backend, const D: usize>(v: &[f32], shape: [usize; D]) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(v.to_vec(), shape), &dev::<B>())
}

/// `[n]` Int tensor (class labels).
pub fn labels<B: Backend>(v: &[i64]) -> Tensor<B, 1, Int> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &dev::<B>())
}

/// Values of a float tensor as `Vec<f32>` (row-major).
pub fn vals<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// The single value of a `[1]` tensor.
pub fn scalar<B: Backend>(t: Tensor<B, 1>) -> f32 {
    let v = vals(t);
    assert_eq!(v.len(), 1, "expected a scalar tensor");
    v[0]
}

/// Asserts element-wise `|a − e| ≤ tol·max(1, |e|)` and that every value is finite.
#[track_caller]
pub fn assert_close(actual: &[f32], expected: &[f32], tol: f32) {
    assert_eq!(actual.len(), expected.len(), "length mismatch");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(a.is_finite(), "element {i} is not finite: {a}");
        let bound = tol * e.abs().max(1.0);
        assert!(
            (a - e).abs() <= bound,
            "element {i}: got {a}, expected {e} (tol {bound})\nactual:   {actual:?}\nexpected: {expected:?}"
        );
    }
}

/// Asserts that every value is finite (no NaN, no ±inf).
#[track_caller]
pub fn assert_finite(v: &[f32]) {
    for (i, x) in v.iter().enumerate() {
        assert!(x.is_finite(), "element {i} is not finite: {x} in {v:?}");
    }
}
