"""Delivery receipts: what reached the phone, from an SMSC's ``deliver_sm`` or an HTTP provider's
callback, stored beside each message's sending status and counted like it."""
