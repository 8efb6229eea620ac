ALTER TABLE pages DROP COLUMN primaries, DROP COLUMN tasks_merged;
