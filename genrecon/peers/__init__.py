"""Other toolkits' methods as genrecon reconstructors: BART, SigPy, ASTRA and scikit-image.

They run through the same pipeline as genrecon's own methods (``genrecon reconstruct``, the benchmark suites),
so a comparison sees the same images, measurements, seeds and metrics. None of the toolkits is a dependency:
a config naming a missing one stops at validation with what to install (:mod:`.status`).

===================  =========  ======================================================================
name                 peer       method
===================  =========  ======================================================================
``bart_pics_tv``     BART       ``bart pics -R T`` (ADMM, TV), single-coil Cartesian MRI
``sigpy_tv``         SigPy      ``TotalVariationRecon`` (primal-dual, TV), single-coil Cartesian MRI
``astra_fbp``        ASTRA      CPU FBP (ram-lak), parallel-beam CT
``astra_sirt``       ASTRA      CPU SIRT (non-negative), parallel-beam CT
``skimage_iradon``   skimage    ``iradon`` (filtered backprojection), parallel-beam CT
===================  =========  ======================================================================

ASTRA's projector itself is an operator (:mod:`genrecon.operators.astra`, ``simulate.projector``).
"""

from . import astra, bart, sigpy_tv, skimage  # noqa: F401  (registers the reconstructors)
from .status import PEERS, available, label, missing_reason, peer_status  # noqa: F401
