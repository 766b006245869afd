"""The technology-transfer domain: the four record kinds, their field rules and forms,
the taxonomy, visibility, expiry, private notes, search terms, and the admin and firm
services. Hub and nodes both use it; it uses the federation core (sync) and never
imports hub or node."""
