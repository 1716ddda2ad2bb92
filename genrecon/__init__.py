"""genrecon: MRI and CT reconstruction with generative priors."""

__version__ = "0.1.0"
