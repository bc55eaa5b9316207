"""Single sign-on for the console: OpenID Connect against the company's identity provider, and
who may enter with which role."""
