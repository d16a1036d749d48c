"""How API callers authenticate. Browser session (with CSRF) now; the JWT bearer joins this list."""

from ninja.security import SessionAuth

API_AUTH = [SessionAuth(csrf=True)]
