"""Reports and exports: the data-quality report and chart, the printable certificate PDF, revocation batches.

Public names of the modules below; import private helpers from their module.
"""

from __future__ import annotations

from vaxcred.pipeline.reports.certificate_data import NO_PASSPORT, CertificateData, certificate_data
from vaxcred.pipeline.reports.certificate_pdf import (
    DEFAULT_ISSUER,
    CertificateDose,
    render_certificate_pdf,
)
from vaxcred.pipeline.reports.chart import (
    CHART_WIDTH,
    chart_size,
    render_chart_png,
)
from vaxcred.pipeline.reports.quality import (
    COUNT_FIELDS,
    UNKNOWN_PROVINCE,
    QualityCounts,
    QualityGroup,
    QualityReport,
    build_quality_report,
    format_text,
)
from vaxcred.pipeline.reports.revocation_export import (
    BAD_PASSPORT,
    PassportHashInput,
    check_hc1,
    decode_passport,
    export_revocation_json,
    export_revocations,
    revocation_list,
)

__all__ = [
    "BAD_PASSPORT",
    "CHART_WIDTH",
    "COUNT_FIELDS",
    "DEFAULT_ISSUER",
    "NO_PASSPORT",
    "UNKNOWN_PROVINCE",
    "CertificateData",
    "CertificateDose",
    "PassportHashInput",
    "QualityCounts",
    "QualityGroup",
    "QualityReport",
    "build_quality_report",
    "certificate_data",
    "chart_size",
    "check_hc1",
    "decode_passport",
    "export_revocation_json",
    "export_revocations",
    "format_text",
    "render_certificate_pdf",
    "render_chart_png",
    "revocation_list",
]
