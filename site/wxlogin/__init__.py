"""wxlogin: sign in with WeChat on every surface (desktop QR, WeChat browser, mini-program, app)."""

__version__ = "0.1.0"
