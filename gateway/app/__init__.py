"""The server's composition root: configuration -> backends -> services -> listeners, and
the data directory (``pli init``, the demo data).

``backends.py`` turns configured names into concrete backends (SQL or LDAP directory
and its operator changes, filesystem or S3 store, key file or PKCS#11 KEK). The
composition roots are this package for the server and ``gateway/cli`` for one
command, which opens its backends through ``backends.py`` too; everything else is
handed the protocols. An import contract in pyproject.toml keeps the backend modules
to the two roots and to ``gateway/smime/hsm.py``, which shares ``vault.pkcs11``'s
session opener; in the CLI only ``pli vault rotate-kek`` on a key file names one
(``vault.keys``).
"""
