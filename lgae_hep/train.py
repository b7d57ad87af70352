"""Training of LGAE / GNNAE autoencoders on background jets: :func:`fit` and its named steps.

What :func:`fit` does
---------------------
* Inputs: :class:`lgae_hep.data.JetTensors`, ``(p4, mask[, scalars])`` tensors/arrays (GeV,
  ``(E, px, py, pz)``) or awkward jets (converted with :func:`lgae_hep.data.to_tensors`). Jets
  flagged invalid by the project-wide bad-input policy are **dropped** with one warning that
  counts them. An empty sample or one with no real particle at all is a ``ValueError``.
* Train / validation split (seeded) unless a validation sample is given; Adam;
  ``ReduceLROnPlateau`` (default) or cosine annealing; gradient-norm clipping; early stopping
  on the validation loss; CUDA when available (``device="auto"``); float32 by default (the
  model's ``dtype`` config entry).
* The data is prepared once: padded ``p4`` + ``mask`` (+ scalars) tensors in the model's dtype,
  moved to the device before the first epoch. A batch is an ``index_select`` of those tensors
  with a slice of the epoch's seeded permutation (:func:`epoch_indices`): no loader, no
  per-batch conversion or copy from the host. Losses are summed on the device and read by the
  host every ``sync_every`` batches (each batch on CPU, where that is free).
* Validation: after every ``val_every``-th epoch, on a fixed seeded subset of the validation
  sample (``val_size``); the default ``"auto"`` sizes it to cost <= 10 % of the training
  between two validations (:data:`VAL_BUDGET`; ``benchmarks/fit_loop.py`` measures it), so the
  reported validation loss is the mean over those jets (``FitResult.val_jets``).
* Loss (per jet, then averaged over the batch): ``"chamfer"`` -- the masked Chamfer distance of
  :func:`lgae_hep.losses.chamfer`, on the 4-vectors in TeV for the LGAE and on the relative
  coordinates ``(eta_rel, phi_rel, pT_rel)`` the network sees for the GNNAE (as in the paper's
  GNNAE baselines); ``"mse"`` -- order-preserving squared error (:func:`lgae_hep.losses.mse`),
  only meaningful for models whose output keeps the input order (``mix`` aggregation, GNNAE-PL).
  :func:`jet_losses` evaluates the same per-jet loss, the natural anomaly score of the model.
  The inputs and losses live in :mod:`lgae_hep.objectives`, the run environment (DDP, output
  folder, disk space, schedules) in :mod:`lgae_hep.fit_runtime`; this module is the fit itself
  and its steps (the command line is ``lgae-hep train``, :mod:`lgae_hep.cli.train`).
* Files in ``out_dir`` (written by rank 0 only): ``last.pt`` after every epoch and ``best.pt``
  on every improvement (atomic writes, :mod:`lgae_hep.checkpoint`), ``metrics.csv`` and
  ``metrics.json`` (one row per epoch: losses, learning rate, jets/s, seconds). ``out_dir`` is
  probed for writability before any training starts.
* ``resume=True`` continues from ``last.pt`` with the model, optimizer, scheduler and RNG
  states and the early-stopping bookkeeping, so a killed run loses at most the epoch in
  progress. Sampling is seeded per epoch (``seed``, ``epoch``), so on a deterministic CPU setup a
  resumed run ends with the same parameters as an uninterrupted one.
* A non-finite loss or gradient never silently continues: the epoch is rolled back to the last
  good state (start of the epoch), the learning rate is halved and the epoch retried; after
  ``max_nonfinite_retries`` such roll-backs training stops with a ``FloatingPointError``.
  After the first roll-back for a training loss, each batch is checked: jets whose own loss is
  not finite (the LGAE's polynomial CG layers overflowing on a rare jet, e.g. a 570 GeV-mass
  QCD jet reconstructed at 1e20 GeV, which fails the same batch on every retry) are left out
  of their step when they are a minority of the batch, counted per epoch in the history
  (``dropped_nonfinite_jets``) and warned about; a mostly non-finite batch still rolls back.
  The check costs one host read per batch and is not carried over a resume.
* DDP: when started by ``torchrun`` (``WORLD_SIZE > 1``) the process group is initialised (gloo
  on CPU, nccl on CUDA), the model is wrapped in ``DistributedDataParallel``, each process
  trains on every ``world``-th jet of the epoch's common permutation (the order
  ``DistributedSampler`` gives; ``batch_size`` is per process) and validates on its share of the
  validation subset, losses are averaged over processes and only rank 0 writes files; every
  rank returns the same :class:`FitResult`.
* Auxiliary objective (optional, ``aux_weight > 0`` with ``aux_targets``; issue 21.3): a small
  MLP (:class:`lgae_hep.objectives.AuxHead`) on the latent's Lorentz invariants
  (:func:`lgae_hep.objectives.latent_invariants`) predicts per-jet targets (e.g. the jet's own
  log m, tau21, tau32, log D2: :func:`lgae_hep.objectives.substructure_targets`), standardised
  once with the mean and standard deviation of the kept training jets; the training objective
  is ``reconstruction + aux_weight * aux`` (per-jet squared error in standardised units,
  averaged over the finite targets). The targets follow their jets through the invalid-jet
  drop and the train / validation split. The validation loss, early stopping and ``best.pt``
  stay on the reconstruction loss alone (comparable with runs without the head); the history
  gains ``train_aux_loss``. The head is a training-time module: it is not part of the model
  (forward outputs, ``state_dict`` and model file are unchanged) and is stored beside it in
  ``extra["aux_head"]`` of ``last.pt`` / ``best.pt`` (:meth:`AuxHead.from_state` rebuilds it),
  its parameters in the optimiser state, so ``resume=True`` continues it. With the default
  ``aux_weight=0`` no head is built and training is bitwise that of a run without the option.
* Contrastive objective (optional, ``contrastive_weight > 0``, LGAE without scalars; issue
  21.3): :mod:`lgae_hep.contrastive`. Each batch is encoded twice more, as an IRC-safe positive
  view (collinear splittings, soft angular smearing) and an anomalous view (extra hard prongs,
  a hard negative), and the objective gains ``contrastive_weight x`` the symmetric InfoNCE of
  a small head (:class:`lgae_hep.contrastive.ContrastiveHead`) on the latent invariants.
  The views are seeded by (seed, epoch, step). Validation, early stopping and ``best.pt`` stay
  on the reconstruction loss; the history gains ``train_contrastive_loss``; the head is stored
  in ``extra["contrastive_head"]`` and resumed as the auxiliary head is.
  Neither head is supported under DDP (a ``ValueError``).
* Normalised-autoencoder objective (optional, ``nae_weight > 0``, LGAE without scalars; issue
  21.3): :mod:`lgae_hep.nae`. Each batch's anomalous view (the contrastive objective's extra
  hard prongs; with ``nae_keep_mass`` narrowed back to each jet's own mass) is moved by
  ``nae_steps`` Langevin steps down the reconstruction error, on the light cone, and the
  objective gains ``nae_weight x`` :func:`lgae_hep.nae.nae_loss` (the
  error on the batch minus the error on those negatives, plus ``nae_gamma`` times their
  squares). The chains are seeded by (seed, epoch, step); no head, so nothing is stored
  beside the model but the options (``extra["nae"]``); the history gains
  ``train_nae_negative_energy`` and ``nae_nonfinite_negatives`` (negatives whose energy
  overflowed, left out of the term and warned about); validation stays on the reconstruction
  loss. Not under DDP.
* Jet-mass term (optional, ``mass_weight > 0``; issue 22): every jet's loss, in training and
  validation alike (so ``best.pt`` and early stopping see it), gains ``mass_weight x`` the
  squared relative error of the reconstructed jet mass
  (:func:`lgae_hep.objectives.jet_mass_term`, jet sums in float64). A per-particle loss
  constrains each 4-vector to within its own size, not the jet sum's ``E - |p|`` on which a
  boosted jet's mass (~0.1 E) lives; a decoder that is physical by construction (``output=
  "lightlike"`` / ``"massive"``) otherwise loses the mass. The weight is stored in the
  checkpoints' ``extra["mass_weight"]``. ``momentum_weight > 0`` adds the jet 4-momentum
  term (:func:`lgae_hep.objectives.jet_momentum_term`) the same way (``extra["momentum_weight"]``).
* A model with no trainable parameter (as :func:`lgae_hep.load_model` returns them: frozen and
  shared through its cache) is refused; fine-tune a copy (``copy.deepcopy(m).requires_grad_
  (True)``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from . import determinism
from .checkpoint import (
    unwrap_model,
)
from .fit_data import (
    SCHEDULERS,
    STEP_OVER_FORWARD,
    VAL_BUDGET,
    VAL_MIN_JETS,
    FitOptions,
    FitResult,
    epoch_indices,
    fit_samples,
    val_jets,
    val_subset,
)
from .fit_loop import Trainer
from .fit_runtime import (
    check_disk_space,
    dist_setup,
    probe_out_dir,
)
from .models import build_model
from .nn.io import parse_dtype
from .objectives import (
    LOSSES,
    jet_losses,
    model_dtype,
    prepare_data,
)

__all__ = ["LOSSES", "SCHEDULERS", "STEP_OVER_FORWARD", "VAL_BUDGET", "VAL_MIN_JETS",
           "FitResult", "epoch_indices", "fit", "jet_losses", "prepare_data", "val_jets",
           "val_subset"]

logger = logging.getLogger("lgae_hep.train")



# ------------------------------------------------------------------------------------ fit
def fit(
    model_or_config: nn.Module | Mapping[str, Any],
    train: Any,
    val: Any = None,
    *,
    epochs: int = 50,
    batch_size: int = 64,
    lr: float = 3e-3,
    patience: int = 10,
    grad_clip: float | None = 1.0,
    out_dir: str | Path = "runs/train",
    resume: bool = False,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    loss: str = "chamfer",
    scheduler: str = "plateau",
    weight_decay: float = 0.0,
    min_delta: float = 0.0,
    max_nonfinite_retries: int = 3,
    num_workers: int = 0,
    epoch_size: int | None = None,
    max_seconds: float | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    extra_info: Mapping[str, Any] | None = None,
    val_every: int = 1,
    val_size: int | str | None = "auto",
    sync_every: int | None = None,
    deterministic: bool = False,
    aux_targets: Any = None,
    aux_weight: float = 0.0,
    aux_hidden: int = 32,
    contrastive_weight: float = 0.0,
    contrastive_temperature: float = 0.1,
    mass_weight: float = 0.0,
    momentum_weight: float = 0.0,
    nae_weight: float = 0.0,
    nae_steps: int = 3,
    nae_step_size: float = 0.02,
    nae_noise: float = 0.005,
    nae_gamma: float = 1.0,
    nae_keep_mass: bool = False,
) -> FitResult:
    """Train an autoencoder on background jets (the module docstring describes the behaviour).

    Parameters
    ----------
    model_or_config : torch.nn.Module or dict
        A model (LGAE / GNNAE) or its config (``{"architecture": "lgae" | "gnnae", ...}``).
    train, val : JetTensors, (p4, mask[, scalars]) or awkward jets
        Training sample and optional validation sample (else ``val_fraction`` of ``train``).
    epochs : int
        Maximum number of epochs (in total, counting those done before a resume).
    batch_size : int
        Jets per optimisation step (per process under DDP). The default 64 and ``lr=3e-3``
        reached a given validation loss in the least CPU time of a batch {32, 64, 128, 256} x
        lr {1e-3, 3e-3} grid on CPU (LGAE-Mix, chamfer-dr; ``benchmarks/fit_tradeoff.py``,
        whose docstring records the table): about half the time of 128 / 1e-3, the bundled
        recipe's; 256 / 1e-3 was the slowest. On a GPU, where a step costs about the same
        up to thousands of jets, use far larger batches (and re-measure the learning rate).
    lr : float
        Initial Adam learning rate (see ``batch_size``).
    patience : int
        Stop after this many validations without an improvement > ``min_delta`` (epochs, at
        the default ``val_every=1``).
    grad_clip : float or None
        Max gradient 2-norm (None: no clipping).
    out_dir : str or Path
        Where ``last.pt``, ``best.pt``, ``metrics.csv`` and ``metrics.json`` go.
    resume : bool
        Continue from ``out_dir/last.pt`` (a finished run returns at once); without it an
        ``out_dir`` that already holds ``last.pt`` is an error (nothing is overwritten).
    device : "auto", "cpu", "cuda", ...
        ``"auto"``: CUDA when available.
    dtype : "float32" / "float64", optional
        Overrides the config's dtype when a config is given (models carry their own).
    seed : int
        Seeds the model initialisation, the train/validation split, the validation subset and
        the per-epoch shuffle.
    val_fraction : float
        Fraction of ``train`` held out for validation when ``val`` is None (0 < f < 1).
    loss : {"chamfer", "mse", "chamfer-dr"}
        Training loss (see the module docstring).
    scheduler : {"plateau", "cosine", "none"}
        Learning-rate schedule (plateau: halve after ``max(1, patience // 3)`` flat
        validations; cosine: annealed over ``epochs``, stepped every epoch).
    weight_decay, min_delta : float
        Adam weight decay; minimum validation improvement that resets the patience.
    max_nonfinite_retries : int
        Roll-backs (each halving the learning rate) allowed after non-finite losses.
    num_workers : int
        Accepted for backward compatibility and ignored: batches are index slices of tensors
        already on the device, there is no loader to parallelise.
    epoch_size : int, optional
        Jets per epoch: each epoch trains on this many jets drawn without replacement from a
        seeded per-epoch permutation of the whole training sample (default: all of them).
        Smaller epochs give more frequent validation, checkpoints and learning-rate decisions.
    max_seconds : float, optional
        Wall-clock budget of this call: no new epoch starts once it is spent (the run can be
        continued with ``resume=True``).
    progress : bool
        tqdm bar per epoch with the loss and jets/s (rank 0 only).
    log : callable, optional
        Receives one line per epoch (default: the ``lgae_hep.train`` logger, and the bar).
    extra_info : mapping, optional
        Plain data stored in every checkpoint's ``extra`` (e.g. the data recipe).
    val_every : int
        Validate after every ``val_every``-th epoch (counted from the start of the run) and
        after epoch ``epochs``. Early stopping, the plateau schedule and ``best.pt`` act on
        validated epochs only; ``last.pt`` is written after every epoch (an epoch without
        validation has ``val_loss`` NaN in the history, null in the metrics files). A run
        stopped by ``max_seconds`` between two validations keeps the best validated weights.
    val_size : "auto", int or None
        Validation jets per validation: a fixed seeded subset of the validation sample, the
        same jets every time (so consecutive validations compare like with like). ``"auto"``
        (default) takes as many as cost at most :data:`VAL_BUDGET` (10 %) of the training
        time between two validations, estimated from jet counts with
        :data:`STEP_OVER_FORWARD` (a training step costs that many validation forwards per
        jet), but at least :data:`VAL_MIN_JETS` (so the bound holds for epochs of more than
        ``VAL_MIN_JETS / (VAL_BUDGET * STEP_OVER_FORWARD)`` ~ 3,300 jets); e.g. 1,500 of the
        bundled recipe's 10,000 validation jets for its 5,000-jet epochs. None: all of them.
    sync_every : int, optional
        Batches between host reads of the training loss (the progress bar, the non-finite
        check). Default: 1 on CPU, where a read costs nothing and a non-finite batch stops
        the epoch before its optimiser step; 50 on accelerators, where a read stalls the
        queue (a non-finite batch is then found up to 49 steps late, and the roll-back to the
        start of the epoch discards those steps as it does the others).
    deterministic : bool
        Run the whole training inside :func:`lgae_hep.determinism.deterministic`
        (deterministic cuBLAS/cuDNN kernels, no TF32, an error for ops without a
        deterministic kernel): on a GPU, two runs with the same seed then give the same
        weights. On CPU training is reproducible with the same seed, machine and thread count
        anyway.
    aux_targets : array_like, optional
        Raw per-jet auxiliary targets (n_train, K), row ``i`` for jet ``i`` of ``train`` (before
        any drop; NaN entries are skipped), e.g.
        :func:`lgae_hep.objectives.substructure_targets`. Used only with ``aux_weight > 0``
        (module docstring), ignored otherwise.
    aux_weight : float
        Weight of the auxiliary loss relative to the reconstruction loss (default 0: no head,
        the training is exactly that without the option).
    aux_hidden : int
        Width of the auxiliary head's two hidden layers.
    contrastive_weight : float
        Weight of the contrastive term (:mod:`lgae_hep.contrastive`; module docstring);
        default 0: no head, the training is exactly that without the option.
    contrastive_temperature : float
        Temperature of its InfoNCE loss.
    mass_weight : float
        Weight of the jet-mass term added to every jet's loss, in training and validation
        alike (:func:`lgae_hep.objectives.jet_mass_term`: the squared relative error of the
        reconstructed jet mass). Default 0: no term, the loss is exactly that without the
        option. For compression models, whose per-particle ``"mse"`` does not constrain the
        difference ``E - |p|`` of the jet sum that the mass (~0.1 E) lives on.
    momentum_weight : float
        Weight of the jet 4-momentum term added the same way
        (:func:`lgae_hep.objectives.jet_momentum_term`: ``|P_reco - P|^2 / E^2``, the
        conservation term of ``"chamfer-dr"``); default 0: no term.
    nae_weight : float
        Weight of the normalised-autoencoder term (:mod:`lgae_hep.nae`; module docstring);
        default 0: no negatives, the training is exactly that without the option.
    nae_steps, nae_step_size, nae_noise : int, float, float
        Langevin steps per negative chain, their relative drift and noise
        (:func:`lgae_hep.nae.langevin_negatives`).
    nae_gamma : float
        Weight of the squared energies in the term (:func:`lgae_hep.nae.nae_loss`).
    nae_keep_mass : bool
        Start the chains from the anomalous view narrowed back to each jet's own mass
        (:func:`lgae_hep.contrastive.hard_prongs` with ``keep_mass``): negatives with more
        prongs at the same mass instead of heavier ones. Default False.

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        Bad arguments, empty / all-padding / all-invalid samples, an unwritable ``out_dir``,
        an existing run without ``resume``, or a checkpoint that does not fit the model.
    FloatingPointError
        When the loss stays non-finite after ``max_nonfinite_retries`` roll-backs.
    """
    with determinism.deterministic(deterministic):
        return _fit(
            model_or_config, train, val, out_dir=out_dir, resume=resume, device=device,
            dtype=dtype, val_fraction=val_fraction, log=log, epochs=epochs,
            batch_size=batch_size, lr=lr, patience=patience, grad_clip=grad_clip, seed=seed,
            loss=loss, scheduler=scheduler, weight_decay=weight_decay, min_delta=min_delta,
            max_nonfinite_retries=max_nonfinite_retries, num_workers=num_workers,
            epoch_size=epoch_size, max_seconds=max_seconds, progress=progress,
            extra_info=dict(extra_info or {}), val_every=val_every, val_size=val_size,
            sync_every=sync_every, aux_targets=aux_targets, aux_weight=aux_weight,
            aux_hidden=aux_hidden, contrastive_weight=contrastive_weight,
            contrastive_temperature=contrastive_temperature, mass_weight=mass_weight,
            momentum_weight=momentum_weight, nae_weight=nae_weight, nae_steps=nae_steps,
            nae_step_size=nae_step_size, nae_noise=nae_noise, nae_gamma=nae_gamma,
            nae_keep_mass=nae_keep_mass,
        )


def _fit(model_or_config: nn.Module | Mapping[str, Any], train: Any, val: Any, *,
         out_dir: str | Path, resume: bool, device: str | torch.device,
         dtype: str | torch.dtype | None, val_fraction: float,
         log: Callable[[str], None] | None, aux_targets: Any = None, **options: Any
         ) -> FitResult:
    """:func:`fit` without the determinism context (its keywords, all given)."""
    t_start = time.perf_counter()
    opts = FitOptions(**options)
    if opts.aux_weight > 0 and aux_targets is None:
        raise ValueError("aux_weight > 0 needs aux_targets (per-jet targets of the train jets)")
    if opts.aux_weight == 0:
        aux_targets = None
    if val is None and not (0.0 < float(val_fraction) < 1.0):
        raise ValueError(f"val_fraction must be in (0, 1) when no val sample is given, "
                         f"got {val_fraction!r}")
    rank, world, dev, dist_here = dist_setup(device)
    out_dir = Path(out_dir)
    torch.manual_seed(opts.seed)
    model = _model_for_fit(model_or_config, dtype)
    if aux_targets is not None and world > 1:
        raise ValueError("the auxiliary objective (aux_weight > 0) is not supported under DDP")
    for label, option in (("contrastive", "contrastive_weight"),
                          ("normalised-autoencoder", "nae_weight")):
        if getattr(opts, option) <= 0:
            continue
        what = f"the {label} objective ({option} > 0)"
        if world > 1:
            raise ValueError(f"{what} is not supported under DDP")
        if (model.config.get("architecture") != "lgae"
                or int(model.config.get("num_scalars", 0)) > 0):
            raise ValueError(f"{what} needs an LGAE without per-particle scalars (its "
                             "augmentations move 4-momenta only)")
    samples = fit_samples(model, train, val, val_fraction, opts.seed, aux_targets)
    if rank == 0:  # before anything is written
        probe_out_dir(out_dir)
        check_disk_space(out_dir, model)
    trainer = Trainer(model, samples, opts, out_dir=out_dir, rank=rank, world=world, dev=dev,
                       emit=log or (lambda msg: logger.info(msg)))
    trainer.restore(resume)
    trainer.to_device()
    trainer.run(t_start)
    trainer.load_best()
    if dist_here:
        dist.destroy_process_group()
    return trainer.result(time.perf_counter() - t_start)


# --------------------------------------------------------------------------- fit: the steps
def _model_for_fit(model_or_config: nn.Module | Mapping[str, Any],
                   dtype: str | torch.dtype | None) -> nn.Module:
    """The bare model to train: the given one (cast to ``dtype``) or one built from a config."""
    if isinstance(model_or_config, nn.Module):
        model = unwrap_model(model_or_config)
        if not (isinstance(getattr(model, "config", None), Mapping)
                and hasattr(model, "loss_features")):
            raise ValueError("the model has no .config dict or no loss_features method; fit "
                             "trains lgae-hep models only")
        if not any(p.requires_grad for p in model.parameters()):
            raise ValueError(
                "the model has no trainable parameter (all requires_grad=False): "
                "lgae_hep.load_model returns frozen inference models shared through its cache; "
                "to fine-tune one, train a copy: copy.deepcopy(model).requires_grad_(True)")
        if dtype is not None and model_dtype(model) != parse_dtype(dtype):
            model = model.to(parse_dtype(dtype))
        return model
    if isinstance(model_or_config, Mapping):
        cfg = dict(model_or_config)
        if dtype is not None:
            cfg["dtype"] = str(parse_dtype(dtype)).replace("torch.", "")
        return build_model(cfg)
    raise ValueError(f"model_or_config must be a model or a config dict, "
                     f"got {type(model_or_config).__name__}")

