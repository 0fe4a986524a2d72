-- The RFC 6962 Merkle tree over the log: its stored hashes (every complete subtree's hash,
-- numbered as in Go's sumdb/tlog), written in the same transaction as the events they cover.
create table tlog_hashes (
    idx   integer primary key,
    hash  blob    not null
);

-- Signed checkpoints (c2sp.org/tlog-checkpoint), one per tree size signed.
create table checkpoints (
    tree_size    integer primary key,
    root         text    not null,
    note         text    not null,
    key_id       text    not null,
    recorded_at  text    not null
);

create trigger tlog_hashes_reject_update before update on tlog_hashes
begin
    select raise(abort, 'tlog_hashes is immutable: update rejected');
end;
create trigger tlog_hashes_reject_delete before delete on tlog_hashes
begin
    select raise(abort, 'tlog_hashes is immutable: delete rejected');
end;
create trigger checkpoints_reject_update before update on checkpoints
begin
    select raise(abort, 'checkpoints is immutable: update rejected');
end;
create trigger checkpoints_reject_delete before delete on checkpoints
begin
    select raise(abort, 'checkpoints is immutable: delete rejected');
end;
