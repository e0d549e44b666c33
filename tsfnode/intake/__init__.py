"""Everything that happens to a study on the sender's side before it is sealed: getting
it in (files, folders, zips, DICOMDIR media, photos of films), removing the patient's
identity (PS3.15 Annex E), flagging pixels that may show identity.

The same code runs on a node and in the light client (`tsfnode send`), so identifying
data is removed on the computer where it was entered.
"""
