"""The report back into the hospital, on the sender's node only: a signed report as the
hospital keeps it. A printed report (``pdf``), DICOM objects for its PACS (``dicom``: an
Encapsulated PDF and a Basic Text SR in the original study, sent by C-STORE through
``images.export``), a FHIR R4 bundle for its HIS (``fhir``). Each is built from a
``ReportOut`` (``report``), which is put together by ``cases.report_out`` from the signed
report, the directory and the pseudonym map; nothing here reads a database or a clock.
"""
