"""Policy decisions of pli: pure evaluations returning Decision values."""

from policies.model import Decision, Verdict

__all__ = ["Decision", "Verdict"]
