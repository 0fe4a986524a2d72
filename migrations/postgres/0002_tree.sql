-- The RFC 6962 Merkle tree over the log: its stored hashes (every complete subtree's hash,
-- numbered as in Go's sumdb/tlog), written in the same transaction as the events they cover.
create table tlog_hashes (
    idx   bigint primary key,
    hash  bytea  not null
);

-- Signed checkpoints (c2sp.org/tlog-checkpoint), one per tree size signed.
create table checkpoints (
    tree_size    bigint primary key,
    root         text   not null,
    note         text   not null,
    key_id       text   not null,
    recorded_at  text   not null
);

create function tree_reject_change() returns trigger language plpgsql as $$
begin
    raise exception '% is immutable: % rejected', tg_table_name, tg_op;
end;
$$;

create trigger tlog_hashes_reject_update before update on tlog_hashes
    for each row execute function tree_reject_change();
create trigger tlog_hashes_reject_delete before delete on tlog_hashes
    for each row execute function tree_reject_change();
create trigger tlog_hashes_reject_truncate before truncate on tlog_hashes
    for each statement execute function tree_reject_change();
create trigger checkpoints_reject_update before update on checkpoints
    for each row execute function tree_reject_change();
create trigger checkpoints_reject_delete before delete on checkpoints
    for each row execute function tree_reject_change();
create trigger checkpoints_reject_truncate before truncate on checkpoints
    for each statement execute function tree_reject_change();
