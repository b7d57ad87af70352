"""The training loop of :func:`lgae_hep.train.fit`: steps, validation, checkpoints, resume and
progress."""

from __future__ import annotations

import copy
import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_state_dict_checked,
    save_checkpoint,
    set_rng_state,
    write_metrics,
)
from .contrastive import ContrastiveHead, contrastive_loss, hard_prongs, positive_view
from .fit_data import FitOptions, FitResult, FitSamples, epoch_indices, val_jets, val_subset
from .fit_runtime import (
    all_reduce_sum,
    make_scheduler,
)
from .nae import langevin_negatives, nae_loss
from .objectives import (
    AuxHead,
    aux_loss,
    forward_model,
    latent_invariants,
    model_dtype,
    per_jet_loss,
)


def history_row(row: dict[str, Any]) -> dict[str, Any]:
    """A ``metrics.json`` row as the run made it: the non-finite numbers that the file holds
    as null back as floats (NaN losses of unvalidated epochs, no best loss yet: inf)."""
    row = dict(row)
    for key, missing in (("train_loss", math.nan), ("val_loss", math.nan),
                         ("best_val_loss", math.inf)):
        if key in row and row[key] is None:
            row[key] = missing
    return row


@dataclass
class Progress:
    """Where a run stands: the early-stopping bookkeeping that ``last.pt`` carries to a resume."""

    epoch: int = 0  # the next epoch to run (0-based)
    step: int = 0
    best_val: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    retries: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any], out_dir: Path) -> Progress:
        ex = ckpt.get("extra") or {}
        start = int(ckpt["epoch"]) + 1
        history: list[dict[str, Any]] = []
        hist_path = out_dir / "metrics.json"
        if hist_path.exists():
            history = [history_row(h) for h in json.loads(hist_path.read_text())
                       if int(h.get("epoch", -1)) < start]
        return cls(
            epoch=start, step=int(ckpt.get("step", 0)),
            best_val=float(ex.get("best_val_loss", math.inf)),
            best_epoch=int(ex.get("best_epoch", -1)), bad_epochs=int(ex.get("bad_epochs", 0)),
            retries=int(ex.get("nonfinite_retries", 0)),
            # a run that stopped early stays finished; one that hit its epoch limit continues
            # when resumed with a larger ``epochs``
            stopped_early=bool(ex.get("stopped_early", False)), history=history,
        )

    def extra(self, epoch: int, done: bool, opts: FitOptions, world: int) -> dict[str, Any]:
        """The ``extra`` entry of the checkpoints written after ``epoch``."""
        return {
            "epoch": epoch, "step": self.step, "best_val_loss": self.best_val,
            "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
            "nonfinite_retries": self.retries, "done": done,
            "stopped_early": bool(self.stopped_early),
            "loss": opts.loss, "seed": opts.seed, "world_size": world,
            "batch_size": opts.batch_size,
            **({"mass_weight": float(opts.mass_weight)} if opts.mass_weight else {}),
            **({"momentum_weight": float(opts.momentum_weight)} if opts.momentum_weight
               else {}),
            "metrics": {"history": self.history[-1] if self.history else {}},
            "info": dict(opts.extra_info),
        }


class Trainer:
    """One :func:`_fit` call: the model, optimiser, scheduler, loaders and the epoch loop."""

    def __init__(self, model: nn.Module, samples: FitSamples, opts: FitOptions, *, out_dir: Path,
                 rank: int, world: int, dev: torch.device, emit: Callable[[str], None]):
        self.opts, self.samples, self.out_dir = opts, samples, out_dir
        self.rank, self.world, self.dev, self.emit = rank, world, dev, emit
        self.is_main = rank == 0
        self.last_path, self.best_path = out_dir / "last.pt", out_dir / "best.pt"
        self.config = dict(model.config)
        self.model = model.to(dev)
        self.train_model: nn.Module = self.model  # the DDP wrapper under torchrun
        self.aux: AuxHead | None = None
        self.clr: ContrastiveHead | None = None
        params = list(self.model.parameters())
        if samples.aux_train is not None:
            self.aux = self._build_aux(samples)
            params += list(self.aux.parameters())
        if opts.contrastive_weight > 0:
            self.clr = ContrastiveHead(self._latent_width(samples)).to(
                device=self.dev, dtype=model_dtype(self.model))
            params += list(self.clr.parameters())
        self.opt = torch.optim.Adam(params, lr=float(opts.lr),
                                    weight_decay=float(opts.weight_decay))
        self.sched = make_scheduler(opts.scheduler, self.opt, opts.epochs, opts.patience)
        self.progress = Progress()
        self.resumed_from: int | None = None
        #: after a roll-back for a non-finite training loss: check each batch and leave out
        #: the jets whose loss is not finite (counted in the history, warned)
        self.drop_nonfinite = False
        self.dropped_jets = 0
        #: the heads' loss sums of the epoch in progress (reset by run_epoch)
        self.aux_tot = torch.zeros((), dtype=torch.float64)
        self.clr_tot = torch.zeros((), dtype=torch.float64)

    # ---- build / restore
    def _latent_width(self, samples: FitSamples) -> int:
        """The number of latent invariants (a head's input width), from one forward pass on
        two training jets."""
        p4, mask = samples.train[0][:2].to(self.dev), samples.train[1][:2].to(self.dev)
        scal = samples.train[2][:2].to(self.dev) if len(samples.train) == 3 else None
        was = self.model.training
        self.model.eval()
        with torch.no_grad():
            n_in = latent_invariants(forward_model(self.model, p4, mask, scal).latent).shape[1]
        self.model.train(was)
        return int(n_in)

    def heads(self) -> dict[str, nn.Module]:
        """The training-time heads, by their checkpoint key (``extra[key]``)."""
        out: dict[str, nn.Module] = {}
        if self.aux is not None:
            out["aux_head"] = self.aux
        if self.clr is not None:
            out["contrastive_head"] = self.clr
        return out

    def _build_aux(self, samples: FitSamples) -> AuxHead:
        """The auxiliary head: its input width from one forward pass on two training jets, the
        target standardisation from all (kept) training jets, computed once."""
        raw = samples.aux_train
        n_in = self._latent_width(samples)
        mean = torch.nanmean(raw, 0)
        std = torch.sqrt(torch.nanmean((raw - mean) ** 2, 0))
        std = torch.where(torch.isfinite(std) & (std > 0), std, torch.ones_like(std))
        mean = torch.where(torch.isfinite(mean), mean, torch.zeros_like(mean))
        names = [f"target{i}" for i in range(raw.shape[1])]
        if raw.shape[1] == 4:
            from .objectives import AUX_TARGETS
            names = list(AUX_TARGETS)
        head = AuxHead(n_in, raw.shape[1], self.opts.aux_hidden, mean=mean.float(),
                       std=std.float(), names=names)
        return head.to(device=self.dev, dtype=model_dtype(self.model))

    def restore(self, resume: bool) -> None:
        """Continue from ``last.pt`` (``resume``); refuse to overwrite a run otherwise."""
        last_path = self.last_path
        if last_path.exists() and not resume:
            raise ValueError(
                f"{last_path} exists: out_dir already holds a training run; pass resume=True "
                "(--resume) to continue it, or choose another out_dir"
            )
        if not resume:
            return
        if not last_path.exists():
            if self.is_main:
                self.emit(f"no {last_path} yet: starting a new run")
            return
        ckpt = load_checkpoint(last_path, map_location="cpu")
        old = dict(ckpt["config"])
        if old != json.loads(json.dumps(self.config)):
            raise CheckpointError(
                f"cannot resume from {last_path}: its model config {old} differs from the "
                f"requested {self.config}"
            )
        load_state_dict_checked(self.model, ckpt["state_dict"], str(last_path))
        heads = self.heads()
        for key, cls, what, option in (("aux_head", AuxHead, "auxiliary", "aux_weight"),
                                       ("contrastive_head", ContrastiveHead, "contrastive",
                                        "contrastive_weight")):
            state = (ckpt.get("extra") or {}).get(key)
            if (state is None) != (key not in heads):
                raise CheckpointError(
                    f"cannot resume from {last_path}: it was trained "
                    f"{'without' if state is None else 'with'} the {what} head, the "
                    f"requested run {'has' if key in heads else 'has not'} one ({option})")
            if state is not None:
                head = cls.from_state(state)
                if head.config != heads[key].config:
                    raise CheckpointError(f"cannot resume from {last_path}: its {what} head "
                                          f"{head.config} differs from the requested "
                                          f"{heads[key].config}")
                load_state_dict_checked(heads[key], state["state_dict"], str(last_path))
        if ckpt.get("optimizer") is not None:
            self.opt.load_state_dict(ckpt["optimizer"])
        if self.sched is not None and ckpt.get("scheduler") is not None:
            self.sched.load_state_dict(ckpt["scheduler"])
        self.progress = Progress.from_checkpoint(ckpt, self.out_dir)
        if ckpt.get("rng") is not None:
            set_rng_state(ckpt["rng"])
        self.resumed_from = self.progress.epoch
        self.emit(f"resuming from {last_path} after epoch {self.progress.epoch - 1}"
                  + (" (run already finished)" if self.progress.stopped_early else ""))

    # ---- data on the device
    def to_device(self) -> None:
        """Wrap the model for DDP (under torchrun); put the training sample and this
        process's share of the validation subset on the device, once."""
        if self.world > 1:
            self.train_model = DistributedDataParallel(
                self.model, device_ids=[self.dev.index] if self.dev.type == "cuda" else None)
        opts = self.opts
        self.train_data = tuple(t.to(self.dev) for t in self.samples.train)
        n_train = len(self.samples.train[0])
        self.epoch_jets = min(opts.epoch_size or n_train, n_train)
        n_val = len(self.samples.val[0])
        self.val_jets = val_jets(opts.val_size, n_val, self.epoch_jets * opts.val_every)
        sel = val_subset(n_val, self.val_jets, opts.seed)[self.rank::self.world]
        self.val_data = tuple(t.index_select(0, sel).to(self.dev) for t in self.samples.val)
        if self.aux is not None:  # standardised once, with the head's (stored) mean and std
            head = self.aux
            raw = self.samples.aux_train.to(self.dev)
            self.aux_data = ((raw - head.mean.double()) / head.std.double()).to(head.mean.dtype)
        self.sync_every = opts.sync_every or (1 if self.dev.type == "cpu" else 50)
        if self.is_main:
            every = "every epoch" if opts.val_every == 1 else f"every {opts.val_every} epochs"
            self.emit(f"training on {n_train} jets ({self.epoch_jets} per epoch), validating "
                      f"{every} on {self.val_jets} of {n_val} jets")

    def _batch(self, data: tuple[torch.Tensor, ...], idx: torch.Tensor | slice):
        b = [t[idx] if isinstance(idx, slice) else t.index_select(0, idx) for t in data]
        return b[0], b[1], (b[2] if len(b) == 3 else None)

    # ---- the loop
    def run(self, t_start: float) -> None:
        """Epochs until ``epochs``, early stopping or the time budget."""
        p, opts = self.progress, self.opts
        self.model.train()
        while not p.stopped_early and p.epoch < opts.epochs:
            good = self._snapshot()
            t0 = time.perf_counter()
            tot, cnt, nonfinite = self.run_epoch(p.epoch, t0)
            # the cadence depends on the epoch number only, so a resumed run validates where
            # an uninterrupted one does
            check = (p.epoch + 1) % opts.val_every == 0 or p.epoch + 1 >= opts.epochs
            vloss = math.nan if nonfinite or not check else self.validate()
            if nonfinite or (check and not math.isfinite(vloss)):
                self.roll_back(good, p.epoch, "training" if nonfinite else "validation")
                continue
            self.end_epoch(p.epoch, tot, cnt, vloss if check else None,
                           time.perf_counter() - t0)
            p.epoch += 1
            if p.stopped_early:
                self.emit(f"early stopping: no improvement for {opts.patience} validations "
                          f"(best epoch {p.best_epoch + 1}, val {p.best_val:.5g})")
                break
            if self._time_spent(t_start):
                self.emit(f"time budget of {opts.max_seconds:.0f} s spent after epoch "
                          f"{p.epoch}: stopping (resume=True continues)")
                break
        if self.world > 1:
            dist.barrier()

    def run_epoch(self, epoch: int, t0: float) -> tuple[float, int, bool]:
        """One pass over this epoch's batches: (loss sum, jets, stopped on a non-finite loss).

        The batches are index slices of the tensors on the device; the loss sum stays on the
        device, and the host reads it only every ``sync_every`` batches (and at the end):
        there the progress bar is updated and a non-finite loss or gradient norm on any
        process since the last read stops the epoch, before that batch's optimiser step.
        """
        opts, world, every = self.opts, self.world, self.sync_every
        model, opt = self.model, self.opt
        idx = epoch_indices(len(self.train_data[0]), epoch, opts.seed, opts.epoch_size,
                            world, self.rank).to(self.dev)
        n, bs = len(idx), opts.batch_size
        n_batches = -(-n // bs)
        tot = torch.zeros((), dtype=torch.float64, device=self.dev)
        bad = torch.zeros((), dtype=torch.bool, device=self.dev)
        cnt, shown, nonfinite = 0, 0, False
        show = opts.progress and self.is_main
        bar = tqdm(total=n * world, desc=f"epoch {epoch + 1}/{opts.epochs}", unit="jet",
                   disable=not show, leave=False, file=sys.stderr)
        aux, clr = self.aux, self.clr
        self.dropped_jets = 0
        self.aux_tot = torch.zeros((), dtype=torch.float64, device=self.dev)
        self.clr_tot = torch.zeros((), dtype=torch.float64, device=self.dev)
        self.nae_tot = torch.zeros((), dtype=torch.float64, device=self.dev)
        self.nae_dropped = 0
        nae = opts.nae_weight > 0
        for k in range(n_batches):
            bidx = idx[k * bs:(k + 1) * bs]
            pb, mb, sb = self._batch(self.train_data, bidx)
            nb = min(bs, n - k * bs)
            opt.zero_grad(set_to_none=True)
            out = forward_model(self.train_model, pb, mb, sb)
            per = per_jet_loss(model, out, pb, mb, opts.loss, opts.mass_weight,
                                   opts.momentum_weight)
            if self.drop_nonfinite:
                fin = torch.isfinite(per)
                # a host read, only after a roll-back (see roll_back); only a minority of a
                # batch is left out: a batch that is mostly non-finite is a failure, as before
                if not bool(fin.all()) and 2 * int(fin.sum()) >= len(fin):
                    dropped = int((~fin).sum())
                    self.dropped_jets += dropped
                    nb -= dropped
                    # the forward again without those jets: their overflowed activations
                    # would turn the shared gradients into inf * 0 = NaN
                    bidx, pb, mb = bidx[fin], pb[fin], mb[fin]
                    sb = sb[fin] if sb is not None else None
                    out = forward_model(self.train_model, pb, mb, sb)
                    per = per_jet_loss(model, out, pb, mb, opts.loss, opts.mass_weight,
                                   opts.momentum_weight)
            lval = per.mean()
            if aux is None and clr is None and not nae:
                lval.backward()
                ok = torch.isfinite(lval)
                params = model.parameters()
            else:
                objective = lval
                params = [*model.parameters()]
                if aux is not None:
                    laux = aux_loss(aux(out.latent), self.aux_data.index_select(0, bidx)).mean()
                    objective = objective + float(opts.aux_weight) * laux
                    params += aux.parameters()
                    self.aux_tot += laux.detach().double() * nb
                if clr is not None:
                    lclr = self._contrastive(out.latent, pb, mb, epoch, k).mean()
                    objective = objective + float(opts.contrastive_weight) * lclr
                    params += clr.parameters()
                    self.clr_tot += lclr.detach().double() * nb
                if nae:
                    e_neg = self._negative_energy(pb, mb, epoch, k)
                    objective = objective + float(opts.nae_weight) * nae_loss(
                        per, e_neg, float(opts.nae_gamma))
                    self.nae_tot += e_neg.detach().double().mean() * nb
                objective.backward()
                ok = torch.isfinite(objective)
            if opts.grad_clip is not None:
                ok = ok & torch.isfinite(nn.utils.clip_grad_norm_(params, opts.grad_clip))
            bad = bad | ~ok
            if (k + 1) % every == 0 or k + 1 == n_batches:  # the host reads
                if all_reduce_sum([float(bad)], world, self.dev)[0] > 0:
                    nonfinite = True
                    break
                if show:
                    done = cnt + nb
                    bar.update((done - shown) * world)
                    shown = done
                    mean = float(tot + lval.detach().double() * nb) / done
                    rate = done * world / max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix(loss=f"{mean:.4g}", jets_s=f"{rate:.0f}")
            opt.step()
            self.progress.step += 1
            tot += lval.detach().double() * nb
            cnt += nb
        bar.close()
        return float(tot), cnt, nonfinite

    def _contrastive(self, latent: Any, p4: torch.Tensor, mask: torch.Tensor, epoch: int,
                     step: int) -> torch.Tensor:
        """The contrastive loss per jet (:mod:`lgae_hep.contrastive`) of a batch whose
        original view's latent is ``latent``: one more encoder pass over its positive and
        anomalous views (stacked), augmentations seeded by (seed, epoch, step), so that a
        resumed run draws the views an uninterrupted one would."""
        gen = self._batch_generator(p4.device, epoch, step)
        pp, mp = positive_view(p4, mask, gen)
        pn, mn = hard_prongs(p4, mask, gen)
        views, _ = self.model.encode(torch.cat([pp, pn]), torch.cat([mp, mn]))
        emb = self.clr(latent_invariants(views))
        b = p4.shape[0]
        return contrastive_loss(self.clr(latent_invariants(latent)), emb[:b], emb[b:],
                                temperature=float(self.opts.contrastive_temperature))

    def _batch_generator(self, device: torch.device, epoch: int, step: int, offset: int = 0
                         ) -> torch.Generator:
        """The generator of one batch's augmentations, seeded by (seed, epoch, step) so that a
        resumed run draws what an uninterrupted one would (``offset``: one stream per use)."""
        gen = torch.Generator(device=device)
        gen.manual_seed(((self.opts.seed * 1_000_003 + epoch) * 1_000_003 + step + offset)
                        % 2 ** 63)
        return gen

    def _negative_energy(self, p4: torch.Tensor, mask: torch.Tensor, epoch: int, step: int
                         ) -> torch.Tensor:
        """The energies (per-jet losses, with gradients to the parameters) of the
        normalised-autoencoder negatives of a batch (:mod:`lgae_hep.nae`): its anomalous view
        moved by Langevin steps down the energy, seeded by (seed, epoch, step)."""
        opts, model = self.opts, self.model
        gen = self._batch_generator(p4.device, epoch, step, offset=7)
        start, mn = hard_prongs(p4, mask, gen, keep_mass=opts.nae_keep_mass)

        def energy(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
            return per_jet_loss(model, forward_model(self.train_model, x, m, None), x, m,
                                opts.loss, opts.mass_weight, opts.momentum_weight)

        neg = langevin_negatives(energy, start, mn, gen, int(opts.nae_steps),
                                 float(opts.nae_step_size), float(opts.nae_noise))
        e = energy(neg, mn)
        # a chain that ran into an overflow of the decoder is left out of the term (counted in
        # the history's nae_nonfinite_negatives), not allowed to turn every gradient into NaN
        fin = torch.isfinite(e)
        if not bool(fin.all()):
            self.nae_dropped += int((~fin).sum())
            e = e[fin]
        return e

    @torch.no_grad()
    def validate(self) -> float:
        """Mean per-jet loss on the validation subset (over all processes); one host read."""
        model = self.model
        model.eval()
        data = self.val_data
        n, bs = len(data[0]), max(self.opts.batch_size, 256)
        tot = torch.zeros((), dtype=torch.float64, device=self.dev)
        for i in range(0, n, bs):
            pb, mb, sb = self._batch(data, slice(i, i + bs))
            per = per_jet_loss(model, forward_model(model, pb, mb, sb), pb, mb, self.opts.loss,
                               self.opts.mass_weight, self.opts.momentum_weight)
            tot += per.double().sum()
        tot, cnt = all_reduce_sum([float(tot), float(n)], self.world, self.dev)
        model.train()
        return tot / max(cnt, 1.0)

    def _snapshot(self) -> dict[str, Any]:
        """The last good state (start of the epoch), for :meth:`roll_back`."""
        return {"model": copy.deepcopy(self.model.state_dict()),
                "heads": {k: copy.deepcopy(h.state_dict()) for k, h in self.heads().items()},
                "opt": copy.deepcopy(self.opt.state_dict()),
                "sched": copy.deepcopy(self.sched.state_dict()) if self.sched is not None
                else None}

    def roll_back(self, good: dict[str, Any], epoch: int, which: str) -> None:
        """After a non-finite loss: restore ``good``, halve the learning rate, warn (the epoch
        is then retried); ``FloatingPointError`` after ``max_nonfinite_retries`` roll-backs."""
        p, limit = self.progress, self.opts.max_nonfinite_retries
        p.retries += 1
        self.model.load_state_dict(good["model"])
        for key, head in self.heads().items():
            head.load_state_dict(good["heads"][key])
        self.opt.load_state_dict(good["opt"])
        if self.sched is not None:
            self.sched.load_state_dict(good["sched"])
        if p.retries > limit:
            raise FloatingPointError(
                f"non-finite loss in epoch {epoch + 1} after {limit} "
                "roll-backs with halved learning rates; the model was restored to the last "
                f"good state (saved in {self.last_path if self.last_path.exists() else 'memory'})"
                ". Check the input data for extreme values or lower --lr / --grad-clip"
            )
        for gr in self.opt.param_groups:
            gr["lr"] *= 0.5
        if which == "training" and not self.drop_nonfinite:
            # from now on every batch is checked, and jets whose own loss is not finite (the
            # decoder's polynomial output overflowing on a rare jet: the same batch would fail
            # again on every retry) are left out of their step and counted
            self.drop_nonfinite = True
        warnings.warn(
            f"non-finite {which} loss in epoch {epoch + 1}: rolled back to the start of the "
            f"epoch and halved the learning rate to {self.opt.param_groups[0]['lr']:.3g} "
            f"(retry {p.retries}/{limit})", RuntimeWarning, stacklevel=4,  # fit's line
        )

    def end_epoch(self, epoch: int, tot: float, cnt: int, vloss: float | None,
                  seconds: float) -> None:
        """Bookkeeping after a good epoch: early-stopping counters and the plateau schedule
        (validated epochs, ``vloss`` not None), the other schedules' step, history,
        checkpoints (``best.pt`` on an improvement, ``last.pt``), metrics files, log line."""
        p, opts = self.progress, self.opts
        tloss_sum, tcnt = all_reduce_sum([tot, float(cnt)], self.world, self.dev)
        tloss = tloss_sum / max(tcnt, 1.0)
        lr_now = self.opt.param_groups[0]["lr"]
        improved = vloss is not None and vloss < p.best_val - opts.min_delta
        if improved:
            p.best_val, p.best_epoch, p.bad_epochs = vloss, epoch, 0
        elif vloss is not None:
            p.bad_epochs += 1
        if self.sched is not None:
            if opts.scheduler != "plateau":
                self.sched.step()
            elif vloss is not None:
                self.sched.step(vloss)
        p.history.append({
            "epoch": epoch, "train_loss": tloss,
            "val_loss": math.nan if vloss is None else vloss, "lr": lr_now,
            "best_val_loss": p.best_val, "jets_per_s": tcnt / max(seconds, 1e-9),
            "seconds": seconds, "step": p.step, "improved": bool(improved),
        })
        if self.drop_nonfinite:
            p.history[-1]["dropped_nonfinite_jets"] = int(all_reduce_sum(
                [float(self.dropped_jets)], self.world, self.dev)[0])
            if p.history[-1]["dropped_nonfinite_jets"]:
                warnings.warn(
                    f"epoch {epoch + 1}: {p.history[-1]['dropped_nonfinite_jets']} training "
                    "jet(s) had a non-finite loss (the network's output overflowed) and were "
                    "left out of their steps", RuntimeWarning, stacklevel=4)
        for active, name, tot_ in ((self.aux is not None, "train_aux_loss", self.aux_tot),
                                   (self.clr is not None, "train_contrastive_loss",
                                    self.clr_tot),
                                   (opts.nae_weight > 0, "train_nae_negative_energy",
                                    self.nae_tot)):
            if active:
                p.history[-1][name] = (
                    all_reduce_sum([float(tot_)], self.world, self.dev)[0] / max(tcnt, 1.0))
        if opts.nae_weight > 0:  # negatives whose energy overflowed, left out of the term
            p.history[-1]["nae_nonfinite_negatives"] = int(self.nae_dropped)
            if self.nae_dropped:
                warnings.warn(
                    f"epoch {epoch + 1}: {self.nae_dropped} normalised-autoencoder negative(s) "
                    "had a non-finite energy and were left out of the term", RuntimeWarning,
                    stacklevel=4)
        p.stopped_early = p.bad_epochs >= opts.patience
        finished = p.stopped_early or epoch + 1 >= opts.epochs
        if self.is_main:
            if improved:
                save_checkpoint(self.best_path, self.model,
                                extra=self._extra(epoch, False), rng_state=False)
            save_checkpoint(self.last_path, self.model, optimizer=self.opt,
                            scheduler=self.sched, extra=self._extra(epoch, finished))
            write_metrics(self.out_dir, p.history)
        val_txt = "-" if vloss is None else f"{vloss:.5g}"
        self.emit(f"epoch {epoch + 1}/{opts.epochs}: train {tloss:.5g}  val {val_txt}  "
                  f"lr {lr_now:.3g}  {tcnt / max(seconds, 1e-9):.0f} jets/s  {seconds:.1f} s"
                  + ("  *" if improved else ""))

    def _extra(self, epoch: int, done: bool) -> dict[str, Any]:
        """A checkpoint's ``extra``: the progress, and the auxiliary head when there is one."""
        extra = self.progress.extra(epoch, done, self.opts, self.world)
        if self.aux is not None:
            extra["aux_head"] = self.aux.to_state()
            extra["aux_weight"] = float(self.opts.aux_weight)
        if self.clr is not None:
            extra["contrastive_head"] = self.clr.to_state()
            extra["contrastive_weight"] = float(self.opts.contrastive_weight)
            extra["contrastive_temperature"] = float(self.opts.contrastive_temperature)
        if self.opts.nae_weight > 0:
            extra["nae"] = {k: float(getattr(self.opts, f"nae_{k}")) for k in
                            ("weight", "steps", "step_size", "noise", "gamma")}
            extra["nae"]["keep_mass"] = bool(self.opts.nae_keep_mass)
        return extra

    def _time_spent(self, t_start: float) -> bool:
        """``max_seconds`` is spent (on any process)."""
        budget = self.opts.max_seconds
        if budget is None:
            return False
        over = time.perf_counter() - t_start > budget
        return all_reduce_sum([float(over)], self.world, self.dev)[0] > 0

    # ---- the end
    def load_best(self) -> None:
        """Put the best weights (``best.pt``) into the model."""
        if self.best_path.exists():
            best = load_checkpoint(self.best_path)
            load_state_dict_checked(self.model, best["state_dict"], str(self.best_path))
            for key, head in self.heads().items():
                state = (best.get("extra") or {}).get(key)
                if state is not None:
                    load_state_dict_checked(head, state["state_dict"], str(self.best_path))

    def result(self, seconds: float) -> FitResult:
        p = self.progress
        self.model.eval()
        return FitResult(
            model=self.model, best_epoch=p.best_epoch, best_val_loss=p.best_val,
            epochs_run=len(p.history), history=p.history, out_dir=self.out_dir,
            stopped_early=p.stopped_early, seconds=seconds,
            resumed_from_epoch=self.resumed_from, config=self.config, val_jets=self.val_jets,
            aux_head=self.aux.eval() if self.aux is not None else None,
            contrastive_head=self.clr.eval() if self.clr is not None else None,
        )
