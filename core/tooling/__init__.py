"""Commands beside the server: ``doctor`` (is this machine ready), ``demo`` (a scripted session)
and ``bench`` (figures beside their ideals on the simulated radio)."""
