"""The paper's claims as data: each with its value (where it has one), units and source.

One entry per claim the study reports test, read by their "our numbers next to the paper's"
tables (:mod:`fsnlab.study.sections`) and by anything else that quotes the paper. ``source`` names
the section of the spec (``../shared/paper/fsn-paper.md``) and ``quote`` the sentence or table
row there; ``paper`` is what a report prints in its "paper" column. Changing a number here changes
every report that quotes it.
"""

from __future__ import annotations

from dataclasses import dataclass

BPB = "bit/byte"


@dataclass(frozen=True)
class Claim:
    """One claim of the paper (or of a source the spec quotes next to it)."""

    key: str
    statement: str  # the claim, as a report's table names it
    paper: str  # the paper's value or direction, as a report's table shows it ("": the value itself)
    source: str  # where: a section of ../shared/paper/fsn-paper.md
    quote: str  # the sentence or table row there
    value: float | None = None  # the paper's number (None: a direction or a quality)
    sd: float | None = None  # its reported spread (± sd), if any
    units: str = ""
    digits: int = 3  # decimals the paper gives

    def __post_init__(self) -> None:
        if not self.paper:  # a number: the paper column shows it as the paper gives it
            object.__setattr__(self, "paper", self.shown)

    @property
    def number(self) -> str:
        """The value alone, with the paper's decimals (``1.5953``); empty without a value."""
        return "" if self.value is None else f"{self.value:.{self.digits}f}"

    @property
    def shown(self) -> str:
        """The value as the paper gives it (``1.5953 ± 0.0014``); empty without a value."""
        if self.value is None:
            return ""
        return self.number + (f" ± {self.sd:.{self.digits}f}" if self.sd is not None else "")


# -- numbers (spec §9.2, Part B.4, §13) ----------------------------------------------------------------

TRANSFORMER_50 = Claim(
    "transformer_50ep", "tuned transformer, enwik8 1M, 50 epochs ('converged')", "",
    "§9.2", "| RoPE-SwiGLU transformer (tuned) | 50 epochs (\"converged\") | **1.611** | single number; spread not given |",
    value=1.611, units=BPB, digits=3)
FSN_50 = Claim(
    "fsn_50ep", "FSN, enwik8 1M, 50 epochs", "",
    "§9.2", "| FSN | 50 epochs | **1.5953 ± 0.0014** | over the \"completed\" 50-epoch runs (count unknown, ≥2) |",
    value=1.5953, sd=0.0014, units=BPB, digits=4)
FSN_30_EVERY_SEED = Claim(
    "fsn_30ep_every_seed_below", f"FSN, 30 epochs: every seed below the transformer's {TRANSFORMER_50.shown}",
    f"every seed < {TRANSFORMER_50.shown}",
    "§9.2", "| FSN | 30 epochs | **every seed < 1.611** | seed count and values not recovered |",
    value=TRANSFORMER_50.value, units=BPB, digits=3)
KA_PAPER_KA = Claim(
    "ka_paper_ka_1m", "KA (Kuramoto attention), enwik8 1M", "",
    "Part B.4", "| enwik8, BPC | 1M | **1.637 ± 0.010** | **1.616 ± 0.004** (gap ≈ 0.02) | [KA] |",
    value=1.637, sd=0.010, units=BPB, digits=3)
KA_PAPER_TRANSFORMER = Claim(
    "ka_paper_transformer_1m", "RoPE-SwiGLU transformer of the KA paper, enwik8 1M", "",
    "Part B.4", "| enwik8, BPC | 1M | **1.637 ± 0.010** | **1.616 ± 0.004** (gap ≈ 0.02) | [KA] |",
    value=1.616, sd=0.004, units=BPB, digits=3)

# -- matched budget (spec §1.4, §9.2, §9.3) ---------------------------------------------------------------

FSN_BELOW_TRANSFORMER = Claim(
    "fsn_below_transformer", "FSN below the tuned transformer at matched parameters and budget",
    f"yes ({FSN_50.number} vs {TRANSFORMER_50.number})",
    "§1.4", "Budgets are matched at one million parameters and matched training budget, on character-level "
    "text and code. The FSN's validation loss is below the transformer's at every epoch measured.")
FSN_EVERY_EPOCH_TEXT = Claim(
    "fsn_every_epoch_text", "FSN below the transformer at every epoch measured", "yes",
    "§9.2", "| FSN vs transformer | every epoch measured | FSN lower | also on code [A] |")
FSN_EVERY_EPOCH_CODE = Claim(
    "fsn_every_epoch_code", "FSN below the transformer at every epoch measured", "yes (no numbers)",
    "§9.3", "FSN below the transformer at every epoch measured. No numbers recovered.")
FSN_MF_TRACKS = Claim(
    "fsn_mf_tracks", "FSN-MF (no MLP) tracks / approaches the transformer", "no number",
    "§9.2", "| FSN-MF (no MLP) | matched | \"tracks\" / \"approaches\" the transformer | no number recovered |")
KA_BEHIND_TRANSFORMER = Claim(
    "ka_behind_transformer",
    f"KA paper: KA {KA_PAPER_KA.shown} behind the transformer's {KA_PAPER_TRANSFORMER.shown} (enwik8 1M, budget unknown)",
    f"{KA_PAPER_KA.number} / {KA_PAPER_TRANSFORMER.number}",
    "Part B.4", "| enwik8, BPC | 1M | **1.637 ± 0.010** | **1.616 ± 0.004** (gap ≈ 0.02) | [KA] |")

# -- copy depth (spec §9.5) ------------------------------------------------------------------------------

KA_BEHIND_EVERY_DEPTH = Claim(
    "ka_behind_every_depth", "unfrustrated base (KA) behind the converged transformer at every copy depth", "every bin",
    "§9.5", "| unfrustrated base vs converged transformer | worse at **every** copy depth; worst on long-range copy events |")
KA_WORST_LONG_RANGE = Claim(
    "ka_worst_long_range", "KA worst on long-range copy events", "worst at long range",
    "§9.5", "| unfrustrated base vs converged transformer | worse at **every** copy depth; worst on long-range copy events |")
FSN_REVERSES_DEPTH_4 = Claim(
    "fsn_reverses_depth_4", "FSN reverses the deficit at every copy depth ≥ 4", "FSN ahead in bins 4–7 … 24–32",
    "§9.5", "| FSN vs transformer | deficit **reversed at every depth ≥ 4**; advantage concentrated on long-range copying |")
FSN_LONG_RANGE = Claim(
    "fsn_long_range", "FSN's advantage concentrated on long-range copying", "largest at long range",
    "§9.5", "| FSN vs transformer | deficit **reversed at every depth ≥ 4**; advantage concentrated on long-range copying |")
DEPTHS_0_3 = Claim(
    "depths_0_3", "depths 0–3", "not stated (OQ-33)",
    "§9.5", "| depths 1–3 | not stated in recovered text (presumably not reversed; OQ-33) |")

# -- scale ladder (spec §9.4, OQ-31) -----------------------------------------------------------------------

LADDER_PERSISTS = Claim(
    "ladder_persists", "the FSN's advantage persists up the ladder, complete through 4M", "FSN ahead at 1M, 2M, 4M (no numbers)",
    "§9.4", "Complete through 4M with the advantage persisting. Other rungs in progress. No numbers recovered.")
LADDER_8M = Claim(
    "ladder_8m", "8M rung", "in progress",
    "§1.4", "The remaining arms are marked \"in progress\" in the paper. One digest mentions an 8M rung.")

# -- ablation ladder (spec §6, §13, OQ-32) -----------------------------------------------------------------

ABLATION_NUMBERS = Claim(
    "ablation_numbers", "per-component ablation numbers", "not recovered (OQ-32)",
    "§6", "fsnlab switches: `kernel=base` (KA), plus intermediate ablations `+harmonics`, `+sakaguchi`, `+delay`, "
    "`full`. Their numbers are unknown (OQ-32).")
PROTOTYPE_KERNELS = Claim(
    "prototype_kernels",
    "spec §13 prototype (0.21M, 600 steps, one seed): first harmonic complex 2.90, + delay 2.88, four harmonics "
    "without delay 2.84, four harmonics + delay 2.72", "full kernel best; harmonics and delay act together",
    "§13", "first harmonic with a learnable complex coefficient 2.90 bpc; + delay 2.88; four harmonics without delay "
    "2.84; four harmonics + delay 2.72. The two act together far more than apart", value=2.72, units=BPB, digits=2)
HARMONICS_AND_DELAY_TOGETHER = Claim(
    "harmonics_and_delay_together", "harmonics and delay act together far more than apart (§13)",
    "full gain > sum of single gains",
    "§13", "The two act together far more than apart; the ablation study should test that with seeds.")

# -- baseline tuning (spec §7.2, §13) ----------------------------------------------------------------------

TRANSFORMER_TUNED = Claim(
    "transformer_tuned", "transformer is tuned by an LR sweep",
    "sweep not reported (spec §7.2 proposes {1e-3, 2e-3, 3e-3, 5e-3})",
    "§7.2", "| peak LR | 3e-3 (sweep {1e-3, 2e-3, 3e-3, 5e-3}) | 3e-3 (sweep same) | \"tuned\" baseline: sweep both |")
FSN_SWEEP = Claim(
    "fsn_sweep", "the same sweep for the FSN", "not reported",
    "§7.2", "| peak LR | 3e-3 (sweep {1e-3, 2e-3, 3e-3, 5e-3}) | 3e-3 (sweep same) | \"tuned\" baseline: sweep both |")
PROTOTYPE_LR = Claim(
    "prototype_lr", "spec §13 prototype (0.21M, 600 steps): the FSN gains from a higher LR, the transformer does not",
    "FSN 2.39 at 1e-2 vs 2.72 at 3e-3; transformer flat",
    "§13", "at lr 1e-2 the full-kernel FSN reached 2.39 bpc against 2.72 at 3e-3, while the transformer stayed at "
    "2.27 (it gains nothing from 1e-2)", value=2.39, units=BPB, digits=2)

# -- kernel reading (spec §1.3, §10) -----------------------------------------------------------------------

NAMED_COEFFICIENTS = Claim(
    "named_coefficients", "each kernel coefficient is a named synchronization object (KS angle, Daido term, delay)",
    "qualitative; no values recovered",
    "§1.3", "Each kernel coefficient has a standard name in synchronization theory, so the trained layer can be "
    "interpreted directly as a coupling function.")
SMALL_RANDOM_ANGLES = Claim(
    "small_random_angles", "digest: frustration angles initialised small and random", "low confidence",
    "§1.3", "\"initialize kernel frustration angles with small random values\" [3P:aiss, \"In practice\" list]. "
    "This may be digest advice and not the paper's.")

# -- regime ladder (the long-training regime of §9.2) -------------------------------------------------------

FSN_BELOW_LONG_REGIME = Claim(
    "fsn_below_long_regime",
    "FSN below the tuned transformer at matched parameters and budget, in the long-training regime (1M, enwik8, 30–50 epochs)",
    f"yes: {FSN_50.number} vs {TRANSFORMER_50.number} at 50 epochs "
    f"(Δ {(FSN_50.value - TRANSFORMER_50.value):+.3f})".replace("-", "−"),
    "§9.2", "| FSN | 50 epochs | **1.5953 ± 0.0014** |; | RoPE-SwiGLU transformer (tuned) | 50 epochs (\"converged\") | **1.611** |")
KA_BEHIND_KA_PAPER = Claim(
    "ka_behind_ka_paper",
    f"KA (base layer) behind the transformer (KA paper: {KA_PAPER_KA.number} vs {KA_PAPER_TRANSFORMER.number})", "behind",
    "Part B.4", "| enwik8, BPC | 1M | **1.637 ± 0.010** | **1.616 ± 0.004** (gap ≈ 0.02) | [KA] |")
FSN_LEAD_EVERY_EPOCH = Claim(
    "fsn_lead_every_epoch", "the FSN's lead holds at every epoch measured", "yes",
    "§1.4", "The FSN's validation loss is below the transformer's at every epoch measured.")
KA_BEHIND_EVERY_DEPTH_LADDER = Claim(
    "ka_behind_every_depth_ladder", "base layer (KA) behind the transformer at every copy depth", "every bin",
    "§9.5", "| unfrustrated base vs converged transformer | worse at **every** copy depth; worst on long-range copy events |")
FSN_REVERSES_DEPTH_4_LADDER = Claim(
    "fsn_reverses_depth_4_ladder", "the FSN kernel reverses that at every depth ≥ 4", "FSN ahead in 4–7 … 24–32",
    "§9.5", "| FSN vs transformer | deficit **reversed at every depth ≥ 4**; advantage concentrated on long-range copying |")

CLAIMS: dict[str, Claim] = {c.key: c for c in list(globals().values()) if isinstance(c, Claim)}


def claim(key: str) -> Claim:
    """The claim named ``key``."""
    return CLAIMS[key]


__all__ = ["BPB", "CLAIMS", "Claim", "claim"] + [name for name, v in list(globals().items()) if isinstance(v, Claim)]
