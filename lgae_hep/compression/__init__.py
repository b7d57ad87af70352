"""Jet compression with an LGAE: store each jet as its latent, get particle-level jets back.

::

    import lgae_hep
    c = lgae_hep.compress(jets)          # CompressedJets: per-jet latent + side information
    rec = lgae_hep.decompress(c)         # [...][jet][particle] jets, same outer structure

    from lgae_hep.compression import compress_files, decompress_file
    compress_files(["nano.root"], "small.root")        # `lgae-hep compress`
    decompress_file("small.root", "jets.root")         # `lgae-hep decompress` (PFNano layout)

What a compressed jet holds
---------------------------
* the model's **latent** (every irrep ``(k, n)`` -> complex ``(tau, d)``, real and imaginary
  parts flattened in the order of ``metadata["latent_layout"]``), stored as float32, float32
  with a truncated mantissa (:func:`truncate_mantissa`, NanoAOD style) or float16;
* the **number of kept particles** ``n = min(multiplicity, N)``: the decoder emits ``N`` nodes
  and, as in :meth:`lgae_hep.models.LGAE.forward`, the first ``n`` are the jet (side
  information, not part of the latent);
* the **4-momentum of the kept particles** ``(E, px, py, pz)`` at full (float64) precision: the
  decoder runs in the jet's rest frame, as the encoder did (:mod:`lgae_hep.scoring.frames`),
  and it undoes the model's per-jet normalisation (a mass-normalised LGAE decodes in units of
  the jet mass, ``model.decode(latent, scale=m)``);
* the **original index** of the jet in its collection, its original multiplicity and a
  **status** (:data:`STATUS_NAMES`, the values of :mod:`lgae_hep.data.badinput`);
* in files also the event keys ``run``, ``luminosityBlock``, ``event``, the index of the input
  file, and the jet collection's own kinematics and tagging fields exactly as stored.

Jets that cannot be encoded are never dropped: a jet without particles is marked ``empty``;
a jet with non-finite or unphysical momenta (``invalid``, the bad-input policy of
:mod:`lgae_hep.data.tensors`), a jet whose mass does not resolve under a mass-normalised model
(``unresolved``, :meth:`~lgae_hep.models.LGAE.unnormalizable`) and a jet whose latent is not
finite in the stored precision (``overflow``), classified by
:func:`lgae_hep.inference.jet_status`, keep their **raw constituents** (all of them, as given)
and come back exactly. One :class:`~lgae_hep.inference.InvalidJetWarning` counts them
(``on_invalid="raise"`` raises instead).

Decompressed particles
----------------------
The decoder's output 4-vectors are not constrained to be physical (for the bundled
``lgae-mix`` about half of them are spacelike and a quarter have E < 0). The PFNano layout
stores ``pt, eta, phi, mass`` of physical particles, so :func:`decompress` (``physical=True``,
the default, and what files hold) repairs every jet with an output outside the light cone
**keeping the jet's decoded 4-momentum** (:func:`~.physical.make_physical`: the unphysical
outputs become massless, the energy balance is taken from the other particles, in the lab when
their 3-momenta can stay, else in the jet's rest frame): the jet 4-momentum and mass read from
a decompressed file are those of :func:`lgae_hep.reconstruct`. A jet whose decoded 4-momentum
is itself not timelike cannot be split into physical particles and is counted apart. Repairs
are never silent: one :class:`~.physical.UnphysicalOutputWarning` (the CLI prints it as one
line) and the counts in the decompressed file's metadata (``physical``) and per jet
(``<collection>_lgaeRepair``). ``physical=False`` returns the network's 4-vectors as they are
(``px, py, pz, E``).

Models
------
The compressed data records the model's name, its config, the sha256 of its weights file (when
it was loaded from one) and :func:`model_checksum` (config + parameters, independent of the
precision the model was loaded in). Decompressing with another model is a ``ValueError``.
Only LGAE models (latent = dict irrep -> complex tensor, ``decode(latent, scale)``) compress.

Modules
-------
* :mod:`.codec`: latent packing, storage precision (:func:`truncate_mantissa`) and the file's
  entropy coding (:func:`parse_compression`);
* :mod:`.jets`: :class:`CompressedJets`, :func:`compress` / :func:`decompress` in memory (the
  scoring engine :mod:`lgae_hep.inference` encodes and decodes) and the model checks;
* :mod:`.physical`: the repair of unphysical decoder outputs (:func:`~.physical.make_physical`);
* :mod:`.fileformat`: the compressed ROOT file, :func:`write_compressed` / :func:`read_compressed`
  (:class:`~.fileformat.CompressedFileReader` reads it in chunks);
* :mod:`.driver`: :func:`compress_files` / :func:`decompress_file` over NanoAOD/PFNano files.
"""

from __future__ import annotations

from .codec import (
    COMPRESSIONS,
    DEFAULT_COMPRESSION,
    LATENT_DTYPES,
    parse_compression,
    truncate_mantissa,
)
from .driver import compress_files, decompress_file
from .fileformat import (
    EVENT_KEYS,
    METADATA_KEY,
    TREE,
    CompressedFileReader,
    read_compressed,
    write_compressed,
)
from .jets import (
    DEFAULT_BATCH_SIZE,
    FORMAT,
    FORMAT_VERSION,
    STATUS_NAMES,
    CompressedJets,
    compress,
    decompress,
    file_sha256,
    model_checksum,
)
from .physical import REPAIR_NAMES, UnphysicalOutputWarning, make_physical

__all__ = [
    "COMPRESSIONS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_COMPRESSION",
    "EVENT_KEYS",
    "FORMAT",
    "FORMAT_VERSION",
    "LATENT_DTYPES",
    "METADATA_KEY",
    "REPAIR_NAMES",
    "STATUS_NAMES",
    "TREE",
    "CompressedFileReader",
    "CompressedJets",
    "UnphysicalOutputWarning",
    "compress",
    "compress_files",
    "decompress",
    "decompress_file",
    "file_sha256",
    "make_physical",
    "model_checksum",
    "parse_compression",
    "read_compressed",
    "truncate_mantissa",
    "write_compressed",
]
