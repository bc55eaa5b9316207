"""The audit log: who changed what, when, written in the transaction of the change it records."""
