from django.contrib.auth.hashers import BCryptSHA256PasswordHasher


class BCryptSHA256Cost12PasswordHasher(BCryptSHA256PasswordHasher):
    """bcrypt over a SHA-256 pre-hash (no 72-byte truncation), cost 12 as the blueprint requires.

    Keeps the `bcrypt_sha256` algorithm name, so hashes stay compatible with Django's own hasher.
    """

    rounds = 12
