ALTER TABLE pages DROP CONSTRAINT pages_page_dimension_check;
-- NOT VALID: pages of 4 or 5 dimensions stored meanwhile stay readable.
ALTER TABLE pages ADD CONSTRAINT pages_page_dimension_check CHECK (page_dimension BETWEEN 0 AND 3) NOT VALID;
ALTER TABLE pages DROP COLUMN aggregation;
ALTER TABLE merge_accumulators ADD COLUMN is_total BOOLEAN NOT NULL DEFAULT false;
UPDATE merge_accumulators SET is_total = (aggregation = 'sum');
ALTER TABLE merge_accumulators DROP COLUMN aggregation;
