//! Column helpers for `[M, 4]` box tensors and `[M, 2]` point tensors.

use burn::tensor::{backend::Backend, Tensor};

/// Splits `[M, 4]` xyxy boxes into four `[M]` columns `(x1, y1, x2, y2)`.
pub fn unstack4<B: Backend>(boxes: Tensor<B, 2>) -> [Tensor<B, 1>; 4] {
    let [m, k] = boxes.dims();
    assert_eq!(k, 4, "expected [M, 4] boxes, got [{m}, {k}]");
    [0, 1, 2, 3].map(|i| boxes.clone().narrow(1, i, 1).reshape([m]))
}

/// Stacks four `[M]` columns into `[M, 4]`.
pub fn stack4<B: Backend>(cols: [Tensor<B, 1>; 4]) -> Tensor<B, 2> {
    Tensor::stack(cols.to_vec(), 1)
}

/// First two columns (`x1, y1` of boxes, or `l, t` of distances) as `[M, 2]`.
pub fn head2<B: Backend>(t: Tensor<B, 2>) -> Tensor<B, 2> {
    t.narrow(1, 0, 2)
}

/// Last two columns (`x2, y2` of boxes, or `r, b` of distances) as `[M, 2]`.
pub fn tail2<B: Backend>(t: Tensor<B, 2>) -> Tensor<B, 2> {
    t.narrow(1, 2, 2)
}

#[cfg(test)]
// Reference values are pasted from float64 output; f32 rounds them, which is intended.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;
    use crate::nn::losses::test_util::*;

    #[test]
    fn split_and_stack_round_trip() {
        let b = t2::<TB>(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], 4);
        let [x1, y1, x2, y2] = unstack4(b.clone());
        assert_eq!(vals(x1.clone()), vec![1.0, 5.0]);
        assert_eq!(vals(y2.clone()), vec![4.0, 8.0]);
        assert_eq!(vals(stack4([x1, y1, x2, y2])), vals(b.clone()));
        assert_eq!(vals(head2(b.clone())), vec![1.0, 2.0, 5.0, 6.0]);
        assert_eq!(vals(tail2(b)), vec![3.0, 4.0, 7.0, 8.0]);
    }
}
