-- When bty's proxyDHCP first answered the machine's firmware in the boot a
-- cycle was offered to: the first step of the per-flash timeline.

ALTER TABLE cycles ADD COLUMN dhcp_at TEXT;
