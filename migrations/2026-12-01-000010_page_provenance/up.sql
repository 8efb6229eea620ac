-- What each final page holds: how many tasks were merged into it and the primaries they
-- really simulated (from the merge's running sums, db::results::write_final_pages). A
-- physicist normalises with them; a check that no task was counted twice reads them. Pages
-- written before this migration do not know: NULL.
ALTER TABLE pages
    ADD COLUMN tasks_merged INTEGER
        CONSTRAINT pages_tasks_merged_check CHECK (tasks_merged >= 0),
    ADD COLUMN primaries BIGINT
        CONSTRAINT pages_primaries_check CHECK (primaries >= 0);
