"""E-mail notices: the messages (``messages.py``, in each person's language, with no
patient data), sending through the operator's SMTP server (``smtp.py``, the standard
library's smtplib in a worker thread) and the queue's sender (``service.py``)."""
