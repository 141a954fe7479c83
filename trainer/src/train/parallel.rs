//! Data-parallel training with burn-collective: one model replica per device,
//! each in its own thread, stepping in lock-step.
//!
//! Every step, each replica computes the objective's loss and gradients on
//! its own batch (`data.batch_size` images, as MMDet's "images per GPU"), the
//! gradients are all-reduced to their mean across every replica of every
//! node, and each replica applies the same SGD update, so the replicas stay
//! identical without ever exchanging weights. Before the backward pass the
//! replicas also all-reduce a small vector (loss components plus "non-finite",
//! "bad input", "empty batch" and "stop" votes) so they agree on whether the
//! step happens at all: one replica must never wait forever for a peer that
//! already gave up.
//!
//! This node's main replica runs on the caller's thread (the training loop);
//! a [`ReplicaGroup`] owns the other local replicas' threads.

use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use anyhow::{anyhow, bail, Context};
use burn::module::{AutodiffModule, Module, ModuleMapper, Param};
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use burn_collective::{PeerId, ReduceOperation};

use super::grad_clip::clip_grad_norm;
use super::objective::Objective;
use super::parallel_cluster::{collective, ClusterConfig, World};
use super::step::{StepError, StepOutput};
use crate::data::loader::collate;
use crate::data::pipeline::Sample;

type Inner<B> = <B as AutodiffBackend>::InnerBackend;

/// The optimiser of [`super::runner::sgd`] for a model `M`.
pub type SgdOptimizer<B, M> =
    burn::optim::adaptor::OptimizerAdaptor<burn::optim::Sgd<Inner<B>>, M, B>;

/// Its state (momentum buffers), as saved in checkpoints.
pub type SgdRecord<B, M> = <SgdOptimizer<B, M> as Optimizer<M, B>>::Record;

/// What one lock-step iteration did; the same on every replica.
#[derive(Debug)]
pub enum ParallelOutcome {
    /// The update was applied; losses are means over all replicas.
    Applied(StepOutput),
    /// Some replica had no readable image: nobody updated (as a single-device
    /// run skips an empty batch).
    Skipped,
    /// Some replica was asked to stop (Ctrl-C): nobody updated.
    Stopped,
    /// A loss was non-finite somewhere: nobody updated.
    Failed(StepError),
    /// A replica's batch did not fit the model; `own` is this replica's error
    /// when it was the one that failed.
    BadInput {
        /// This replica's own error, if it had one.
        own: Option<String>,
    },
}

/// All-reduce a small host vector (sum) across every replica.
fn all_reduce_host<B: AutodiffBackend>(
    peer: usize,
    values: Vec<f32>,
    device: &B::Device,
) -> anyhow::Result<Vec<f32>> {
    let n = values.len();
    let t = Tensor::<Inner<B>, 1>::from_data(TensorData::new(values, [n]), device);
    let out = burn_collective::all_reduce::<Inner<B>>(
        PeerId::from(peer),
        t.into_primitive().tensor(),
        ReduceOperation::Sum,
    )
    .map_err(|e| anyhow!("all-reduce of the step statistics (rank {peer}): {e:?}"))?;
    let out = Tensor::<Inner<B>, 1>::from_primitive(TensorPrimitive::Float(out));
    out.into_data()
        .to_vec::<f32>()
        .map_err(|e| anyhow!("reading the step statistics: {e:?}"))
}

/// One lock-step iteration on one replica: loss, agreement on whether to
/// step, backward, gradient mean across replicas, optional global-norm
/// clipping (on the averaged gradients, so identical everywhere) and the
/// optimiser update.
///
/// `samples` empty means this replica's images were all unreadable.
/// Returns the (possibly updated) model and the outcome every replica agrees
/// on; `Err` only when burn-collective itself fails (the run cannot go on).
#[allow(clippy::too_many_arguments)]
pub fn parallel_step<B, O, J>(
    peer: usize,
    world_size: usize,
    model: J::Model,
    optimizer: &mut O,
    objective: &J,
    samples: Vec<Sample>,
    pad_divisor: usize,
    device: &B::Device,
    lr: f64,
    grad_clip: Option<f32>,
    stop: bool,
) -> anyhow::Result<(J::Model, ParallelOutcome)>
where
    B: AutodiffBackend,
    J: Objective<B>,
    O: Optimizer<J::Model, B>,
{
    let names = objective.loss_names(&model);
    let empty = samples.is_empty();
    let losses = if empty {
        None
    } else {
        let batch = collate::<B>(samples, pad_divisor, device);
        Some(objective.loss(&model, &batch))
    };
    let (values, bad_input) = match &losses {
        Some(Ok(l)) => (l.values(), None),
        Some(Err(e)) => (Vec::new(), Some(e.to_string())),
        None => (Vec::new(), None),
    };
    // Votes after the components: non-finite, bad input, empty batch, stop.
    let mut stats = vec![0f32; names.len() + 4];
    for (slot, (_, v)) in stats.iter_mut().zip(&values) {
        *slot = *v;
    }
    let k = names.len();
    stats[k] = values.iter().any(|(_, v)| !v.is_finite()) as u8 as f32;
    stats[k + 1] = bad_input.is_some() as u8 as f32;
    stats[k + 2] = empty as u8 as f32;
    stats[k + 3] = stop as u8 as f32;
    let sums = all_reduce_host::<B>(peer, stats, device)?;
    if sums[k + 3] > 0.0 {
        return Ok((model, ParallelOutcome::Stopped));
    }
    if sums[k + 1] > 0.0 {
        return Ok((model, ParallelOutcome::BadInput { own: bad_input }));
    }
    if sums[k + 2] > 0.0 {
        return Ok((model, ParallelOutcome::Skipped));
    }
    let means: Vec<(String, f32)> = names
        .iter()
        .zip(&sums)
        .map(|(n, s)| (n.clone(), s / world_size as f32))
        .collect();
    if sums[k] > 0.0 {
        // Name the component that went bad (a NaN/inf survives the sum).
        let (name, value) = means
            .iter()
            .find(|(_, v)| !v.is_finite())
            .cloned()
            .unwrap_or_else(|| ("loss".into(), f32::NAN));
        return Ok((
            model,
            ParallelOutcome::Failed(StepError::NonFinite { name, value }),
        ));
    }
    let Some(Ok(losses)) = losses else {
        unreachable!("every replica voted its batch usable");
    };
    let grads = GradientsParams::from_grads(losses.total().backward(), &model);
    let mut grads = mean_gradients::<B, J::Model>(peer, &model, grads)?;
    let grad_norm = grad_clip.map(|max| clip_grad_norm(&model, &mut grads, max));
    let model = optimizer.step(lr, model, grads);
    let total = means.iter().map(|(_, v)| v).sum();
    Ok((
        model,
        ParallelOutcome::Applied(StepOutput {
            losses: means,
            total,
            grad_norm,
        }),
    ))
}

/// All-reduces every gradient to its mean, in the module's parameter order.
///
/// burn's `GradientsParams::all_reduce` orders by `ParamId`, and ids are
/// random per process: two nodes would pair different tensors. The module's
/// structure is the same everywhere, so visiting order is.
struct MeanGradients<'a, B: AutodiffBackend> {
    peer: usize,
    grads: &'a mut GradientsParams,
    error: Option<anyhow::Error>,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> burn::module::ModuleVisitor<B> for MeanGradients<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.error.is_some() {
            return;
        }
        let Some(g) = self.grads.remove::<Inner<B>, D>(param.id) else {
            return; // frozen: no gradient on any replica
        };
        match burn_collective::all_reduce::<Inner<B>>(
            PeerId::from(self.peer),
            g.into_primitive().tensor(),
            ReduceOperation::Mean,
        ) {
            Ok(t) => self.grads.register::<Inner<B>, D>(
                param.id,
                Tensor::from_primitive(TensorPrimitive::Float(t)),
            ),
            Err(e) => self.error = Some(anyhow!("gradient all-reduce (rank {}): {e:?}", self.peer)),
        }
    }
}

fn mean_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
    peer: usize,
    model: &M,
    mut grads: GradientsParams,
) -> anyhow::Result<GradientsParams> {
    let mut v = MeanGradients::<B> {
        peer,
        grads: &mut grads,
        error: None,
        _b: Default::default(),
    };
    model.visit(&mut v);
    match v.error {
        Some(e) => Err(e),
        None => Ok(grads),
    }
}

/// Copies rank 0's parameters to every replica: each replica contributes its
/// own values on rank 0 and zeros elsewhere to a sum all-reduce. (burn-collective
/// 0.21 has no multi-node broadcast; this sum is exact.)
struct FromRankZero<'a, B: AutodiffBackend> {
    peer: usize,
    error: &'a mut Option<anyhow::Error>,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for FromRankZero<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        if self.error.is_some() {
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let require_grad = tensor.is_require_grad();
        let inner = tensor.inner();
        let mine = if self.peer == 0 {
            inner.clone()
        } else {
            inner.zeros_like()
        };
        let restore = |t: Tensor<Inner<B>, D>| {
            let t = Tensor::<B, D>::from_inner(t);
            if require_grad {
                t.require_grad()
            } else {
                t
            }
        };
        match burn_collective::all_reduce::<Inner<B>>(
            PeerId::from(self.peer),
            mine.into_primitive().tensor(),
            ReduceOperation::Sum,
        ) {
            Ok(t) => {
                let t = Tensor::<Inner<B>, D>::from_primitive(TensorPrimitive::Float(t));
                Param::from_mapped_value(id, restore(t), mapper)
            }
            Err(e) => {
                *self.error = Some(anyhow!(
                    "copying rank 0's weights (rank {}): {e:?}",
                    self.peer
                ));
                // Keep this replica's value; the caller reports the error.
                Param::from_mapped_value(id, restore(inner), mapper)
            }
        }
    }
}

/// Start-of-run agreement between replicas: every replica must resume at the
/// same iteration, and on multi-node runs the weights start as rank 0's.
pub fn join_run<B: AutodiffBackend, M: AutodiffModule<B>>(
    peer: usize,
    world: World,
    model: M,
    iter: usize,
    device: &B::Device,
) -> anyhow::Result<M> {
    let sums = all_reduce_host::<B>(peer, vec![iter as f32, 1.0], device)?;
    if (sums[0] - (iter * world.size()) as f32).abs() > 0.5 {
        bail!(
            "the replicas start at different iterations (this one at {iter}, mean {:.1}): \
             resume every node from the same checkpoint (a shared work_dir), or start all without --resume",
            sums[0] / sums[1]
        );
    }
    if world.nodes == 1 {
        // Local replicas are clones of one model: already identical.
        return Ok(model);
    }
    let mut error = None;
    let model = model.map(&mut FromRankZero::<B> {
        peer,
        error: &mut error,
        _b: Default::default(),
    });
    match error {
        Some(e) => Err(e),
        None => Ok(model),
    }
}

/// Collects `[Σp, Σp²]` of every float parameter (a weight fingerprint).
struct Fingerprint<B: AutodiffBackend> {
    values: Vec<f32>,
    _b: std::marker::PhantomData<B>,
}

use burn::tensor::ElementConversion as _;

impl<B: AutodiffBackend> burn::module::ModuleVisitor<B> for Fingerprint<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val().inner();
        let s = t.clone().sum().into_scalar().elem::<f32>();
        let q = (t.clone() * t).sum().into_scalar().elem::<f32>();
        self.values.extend([s, q]);
    }
}

/// End-of-run check that every replica holds the same weights: compares each
/// replica's fingerprint with the mean over all of them. Returns a hex digest
/// of this replica's fingerprint (equal on every replica when in sync).
pub fn verify_in_sync<B: AutodiffBackend, M: AutodiffModule<B>>(
    peer: usize,
    world_size: usize,
    model: &M,
    device: &B::Device,
) -> anyhow::Result<String> {
    let mut fp = Fingerprint::<B> {
        values: Vec::new(),
        _b: Default::default(),
    };
    model.visit(&mut fp);
    let sums = all_reduce_host::<B>(peer, fp.values.clone(), device)?;
    for (mine, sum) in fp.values.iter().zip(&sums) {
        let mean = sum / world_size as f32;
        if (mine - mean).abs() > 1e-5 * mean.abs().max(1.0) {
            bail!(
                "rank {peer}: the replicas' weights diverged ({mine} here, {mean} on average): \
                 every node must run the same crosskd build, config and backend"
            );
        }
    }
    let digest = fp.values.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        (h ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3)
    });
    Ok(format!("{digest:016x}"))
}

/// Work for a replica thread.
enum Command {
    Step {
        samples: Vec<Sample>,
        lr: f64,
        stop: bool,
    },
}

/// A replica thread's view of a step: its own bad-input message, if any.
type Reply = anyhow::Result<Option<String>>;

/// The threads of this node's replicas other than the main one.
pub struct ReplicaGroup {
    senders: Vec<Sender<Command>>,
    replies: Receiver<(usize, Reply)>,
    handles: Vec<JoinHandle<()>>,
}

/// What a replica thread needs to build its replica.
pub struct ReplicaSpec<B: AutodiffBackend, J: Objective<B>> {
    /// Local index (1.. ; 0 is the main replica on the caller's thread).
    pub local: usize,
    /// Its device.
    pub device: B::Device,
    /// The objective with its tensors (e.g. the teacher) on `device`.
    pub objective: J,
}

impl ReplicaGroup {
    /// Spawn one thread per replica: each forks `model` and the optimiser
    /// state to its device and joins the collective. Returns once the threads
    /// run; joining completes when the main replica registers too.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn<B, J>(
        world: World,
        cluster: &ClusterConfig,
        replicas: Vec<ReplicaSpec<B, J>>,
        model: &J::Model,
        sgd: &SgdConfig,
        optim_record: Option<SgdRecord<B, J::Model>>,
        iter: usize,
        pad_divisor: usize,
        grad_clip: Option<f32>,
    ) -> anyhow::Result<Self>
    where
        B: AutodiffBackend,
        J: Objective<B> + Send + 'static,
        J::Model: Send + 'static,
    {
        let config = collective::config(cluster, world)?;
        let (reply_tx, replies) = mpsc::channel();
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for spec in replicas {
            let (tx, rx) = mpsc::channel::<Command>();
            let reply_tx = reply_tx.clone();
            let peer = world.global_rank(spec.local);
            let model = model.clone().fork(&spec.device);
            let mut optim = sgd.init::<B, J::Model>();
            if let Some(r) = &optim_record {
                optim = optim.load_record(r.clone());
            }
            let config = config.clone();
            let cluster = cluster.clone();
            let handle = std::thread::Builder::new()
                .name(format!("crosskd-replica-{peer}"))
                .spawn(move || {
                    let ReplicaSpec {
                        device, objective, ..
                    } = spec;
                    let reply = |r: Reply| {
                        let _ = reply_tx.send((peer, r));
                    };
                    if let Err(e) =
                        collective::register::<Inner<B>>(peer, device.clone(), config, &cluster)
                    {
                        reply(Err(e));
                        return;
                    }
                    let mut model = match join_run::<B, J::Model>(peer, world, model, iter, &device)
                    {
                        Ok(m) => m,
                        Err(e) => {
                            reply(Err(e));
                            return;
                        }
                    };
                    reply(Ok(None));
                    while let Ok(Command::Step { samples, lr, stop }) = rx.recv() {
                        match parallel_step::<B, _, J>(
                            peer,
                            world.size(),
                            model,
                            &mut optim,
                            &objective,
                            samples,
                            pad_divisor,
                            &device,
                            lr,
                            grad_clip,
                            stop,
                        ) {
                            Ok((m, outcome)) => {
                                model = m;
                                reply(Ok(match outcome {
                                    ParallelOutcome::BadInput { own } => own,
                                    _ => None,
                                }));
                            }
                            Err(e) => {
                                reply(Err(e));
                                return;
                            }
                        }
                    }
                    if let Err(e) =
                        verify_in_sync::<B, J::Model>(peer, world.size(), &model, &device)
                    {
                        eprintln!("error: {e}");
                    }
                    collective::finish::<Inner<B>>(peer);
                })
                .context("spawning a replica thread")?;
            senders.push(tx);
            handles.push(handle);
        }
        Ok(Self {
            senders,
            replies,
            handles,
        })
    }

    /// Wait for one reply from every replica thread (after joining or a step);
    /// returns the bad-input messages they reported.
    pub fn collect(&self) -> anyhow::Result<Vec<String>> {
        let mut own = Vec::new();
        for _ in 0..self.senders.len() {
            let (peer, r) = self
                .replies
                .recv()
                .context("a replica thread exited unexpectedly")?;
            if let Some(msg) = r.with_context(|| format!("replica rank {peer}"))? {
                own.push(format!("rank {peer}: {msg}"));
            }
        }
        Ok(own)
    }

    /// Hand each replica thread its batch for the next step (`batches[i]` goes
    /// to local replica `i + 1`).
    pub fn dispatch(&self, batches: Vec<Vec<Sample>>, lr: f64, stop: bool) -> anyhow::Result<()> {
        for (tx, samples) in self.senders.iter().zip(batches) {
            tx.send(Command::Step { samples, lr, stop })
                .map_err(|_| anyhow!("a replica thread exited unexpectedly"))?;
        }
        Ok(())
    }
}

impl ReplicaGroup {
    /// End of the run: tell the threads to stop (each then takes part in
    /// [`verify_in_sync`] and leaves the collective).
    pub fn close(&mut self) {
        self.senders.clear();
    }

    /// Wait for the threads after [`close`](Self::close) and the main
    /// replica's own [`verify_in_sync`].
    pub fn shutdown(mut self) {
        self.senders.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for ReplicaGroup {
    fn drop(&mut self) {
        // On an error path a thread may be blocked in a collective call that
        // will never complete: close the channels but do not join (the
        // process is about to report the error).
        self.senders.clear();
    }
}
