"""Reports and exports: the data-quality report and chart, the printable certificate PDF, revocation batches,
the standalone site-signed records of a person's doses and their text form.

Public names of the modules below; import private helpers from their module. The certificate PDF and its signature (extra
``pdf``) and the chart (Pillow, extra ``qr``) load on first use of their names, so the pipeline runs with the
``pipeline`` extra alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vaxcred.pipeline.reports.certificate_data import (
    NO_PASSPORT,
    CertificateData,
    CertificateDose,
    certificate_data,
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
from vaxcred.pipeline.reports.record_text import (
    MAX_RECORD_TEXT_CHARS,
    RECORD_TEXT_PREFIX,
    decode_record_text,
    encode_record_text,
    read_record,
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
from vaxcred.pipeline.reports.site_records import (
    DOSE_WITHDRAWN,
    NO_SITE_RECORD,
    ExportedRecords,
    StandaloneRecord,
    standalone_records,
)

if TYPE_CHECKING:
    from vaxcred.pipeline.reports.certificate_pdf import (
        DEFAULT_ISSUER,
        render_certificate_pdf,
    )
    from vaxcred.pipeline.reports.chart import (
        CHART_WIDTH,
        chart_size,
        render_chart_png,
    )
    from vaxcred.pipeline.reports.pdf_signature import (
        PdfSignatureReport,
        sign_certificate_pdf,
        verify_certificate_pdf,
    )

#: names whose module needs an extra beyond ``pipeline``: imported on first access (PEP 562)
_LAZY = {
    "DEFAULT_ISSUER": "certificate_pdf",
    "render_certificate_pdf": "certificate_pdf",
    "CHART_WIDTH": "chart",
    "chart_size": "chart",
    "render_chart_png": "chart",
    "PdfSignatureReport": "pdf_signature",
    "sign_certificate_pdf": "pdf_signature",
    "verify_certificate_pdf": "pdf_signature",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "BAD_PASSPORT",
    "CHART_WIDTH",
    "COUNT_FIELDS",
    "DEFAULT_ISSUER",
    "DOSE_WITHDRAWN",
    "MAX_RECORD_TEXT_CHARS",
    "NO_PASSPORT",
    "NO_SITE_RECORD",
    "RECORD_TEXT_PREFIX",
    "UNKNOWN_PROVINCE",
    "CertificateData",
    "CertificateDose",
    "ExportedRecords",
    "PassportHashInput",
    "PdfSignatureReport",
    "QualityCounts",
    "QualityGroup",
    "QualityReport",
    "StandaloneRecord",
    "build_quality_report",
    "certificate_data",
    "chart_size",
    "check_hc1",
    "decode_passport",
    "decode_record_text",
    "encode_record_text",
    "export_revocation_json",
    "export_revocations",
    "format_text",
    "read_record",
    "render_certificate_pdf",
    "render_chart_png",
    "revocation_list",
    "sign_certificate_pdf",
    "standalone_records",
    "verify_certificate_pdf",
]
