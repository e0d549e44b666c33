"""Images already in the node: rendering frames (viewer, DICOMweb) and exporting studies
(zip, C-STORE).
"""
