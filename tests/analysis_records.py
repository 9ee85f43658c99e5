"""The picture measures a hand-made analysis record needs for the frame gate
(frameloom.decision.gate_reason): a normally exposed frame with detail, no text."""

PICTURE = {"exposure": {"p1": 0.05, "p99": 0.95},
           "plain_ground": {"flat_share": 0.3, "text_lines": 0, "title_card": False}}
