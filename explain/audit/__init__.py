"""Batch audits of datasets: resumable Parquet output, local / processes / Ray engines.

Examples:
    >>> from explain.audit import audit, AuditSummary                # doctest: +SKIP
    >>> s = audit("outputs.jsonl", lm, out="audit.parquet")          # doctest: +SKIP
"""

from explain.audit.api import AuditSummary, audit, estimate, risk_histogram, summarise

__all__ = ["AuditSummary", "audit", "estimate", "risk_histogram", "summarise"]
