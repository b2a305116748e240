"""Import toyticket before any test module imports torch: the package pins the numerics mode
(``toyticket.numerics``), which must happen before torch and numba choose their kernels."""

import toyticket  # noqa: F401
