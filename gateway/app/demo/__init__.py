"""Demo identities and data files served by ``make run`` (all synthetic)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO_DIR", "DEMO_DOMAINS", "DEMO_IDENTITIES"]

DEMO_DIR = Path(__file__).parent
DEMO_DOMAINS = ("ehpad-les-tilleuls.mssante.fr", "ch-arras.mssante.fr", "medecin.mssante.fr")
# The first nine rows of the demo extraction (see ../shared/samples/README.md).
DEMO_IDENTITIES = (
    "secretariat@ehpad-les-tilleuls.mssante.fr",
    "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr",
    "dr.paul.durand@ehpad-les-tilleuls.mssante.fr",
    "urgences@ch-arras.mssante.fr",
    "secretariat.geriatrie@ch-arras.mssante.fr",
    "sophie.bernard@ch-arras.mssante.fr",
    "dpi@ch-arras.mssante.fr",
    "jean.petit@medecin.mssante.fr",
    "cabinet.petit@medecin.mssante.fr",
)
