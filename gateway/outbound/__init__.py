"""The outbound queue: messages for other operators' domains, delivered over SMTP+TLS.

``store`` owns the ``outbound`` rows (enqueue in the ingest transaction,
claim across instances, mark results); ``worker`` delivers with aiosmtplib;
``dsn`` writes RFC 3464 delivery status notifications back to the sender.
"""
