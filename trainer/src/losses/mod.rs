//! Detection and distillation losses as burn tensor code.
