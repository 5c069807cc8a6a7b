"""The pure core: no I/O, no clock of its own. JOSE parsing and claim validation, the principal and the
signed identity headers, reason codes with their HTTP status, the route policy, the decision."""
