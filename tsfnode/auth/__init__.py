"""Who is asking: local accounts, their person keys and API tokens, web sessions and
sign-in throttling; shared by the web application, the local API and DICOMweb."""
