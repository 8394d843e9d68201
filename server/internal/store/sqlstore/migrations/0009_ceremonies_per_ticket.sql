-- A ticket keeps its newest few ceremonies only: PutCeremony drops the older ones through
-- this index rather than by reading every open ceremony.
CREATE INDEX ceremonies_ticket ON ceremonies (ticket_hash, expires_at);
