"""The paper's protocol choices that flags offer: when the steering bias applies and which rule
marks a steered answer equal to the unsteered one as a miss, with the per-protocol defaults.

Standard library only (no numpy), so ``import gaze_explorer.cli`` stays cheap; the evaluation
report (``core.evaluation_report``) applies them.
"""

from __future__ import annotations

# A steered answer (nearly) equal to its strip's unsteered answer is a miss, whatever the judge
# says: steering did nothing. The paper: token-level Jaccard > 0.9, for static VQA and static
# narration. The authors' code: normalised-equal, or word Jaccard >= 0.85. "exact" was this
# project's earlier rule (narration only); "off" keeps the judge's verdicts.
BASELINE_RULES = {
    "jaccard": "word-set Jaccard with the unsteered answer > 0.9 (the paper)",
    "authors": "normalised-equal, or word-set Jaccard >= 0.85 (the authors' code)",
    "exact": "the same text once stripped (before the paper's rule)",
    "off": "no rule",
}
DEFAULT_BASELINE_RULE = "jaccard"

# When the steering bias applies (paper Sec. A and the authors' scripts): on the prompt (prefill)
# rows and every decode step for VQA and static narration; on decode steps only for dynamic
# narration, whose target changes while it decodes. Region steering is static, so it follows VQA.
BIAS_ON = ("prefill+decode", "decode")
DEFAULT_BIAS_ON = {
    "static": "prefill+decode",
    "narration": "prefill+decode",
    "dynamic": "decode",
    "region": "prefill+decode",
}
BASELINE_RULE_PROTOCOLS = ("static", "narration")

# The head-selection criteria (``core.criteria``): the gaze score, Image Heads (MaskCD) and
# Localization Heads (Kang et al.); ``top:K`` is ``gaze:K``. Here, beside the other protocol
# choices, so the CLI's parser names them without importing numpy.
CRITERIA = ("gaze", "image", "localization")  # dynamic and region have no unsteered twin rule

# Localization Heads (Kang et al.): where the paper's text and the authors' code differ
# (core.criteria): the spatial entropy ("paper": component sizes of the map above its mean; "code":
# components of relu(map - 2 x mean) weighted by their mass) and the bottom-row filter ("code": any
# bottom-row cell above 0.05; "peak": the map's maximum in the bottom row; "off"). First = default.
ENTROPY_VARIANTS = ("paper", "code")
BOTTOM_ROW_RULES = ("code", "peak", "off")
