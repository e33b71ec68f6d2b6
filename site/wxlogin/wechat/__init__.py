"""WeChat protocol client and crypto; knows nothing of Tornado handlers."""
