-- How tasks combine into a page, as pymchelper merges SHIELD-HIT12A output (page_normalized):
-- 'mean' primaries-weighted (dose, fluence, LET), 'sum' (counts), 'copy' the first task's
-- values (material, density maps), 'concat' each task's values in task order (MCPL phase
-- space; kept per task in task_results until the final merge).
ALTER TABLE merge_accumulators ADD COLUMN aggregation TEXT NOT NULL DEFAULT 'mean'
    CONSTRAINT merge_accumulators_aggregation_check
    CHECK (aggregation IN ('mean', 'sum', 'copy', 'concat'));
UPDATE merge_accumulators SET aggregation = 'sum' WHERE is_total;
ALTER TABLE merge_accumulators DROP COLUMN is_total;

-- The final pages say how they were merged.
ALTER TABLE pages ADD COLUMN aggregation TEXT NOT NULL DEFAULT 'mean'
    CONSTRAINT pages_aggregation_check
    CHECK (aggregation IN ('mean', 'sum', 'copy', 'concat'));



-- Differential scoring adds up to two axes to a page's three spatial ones.
ALTER TABLE pages DROP CONSTRAINT pages_page_dimension_check;
ALTER TABLE pages ADD CONSTRAINT pages_page_dimension_check CHECK (page_dimension BETWEEN 0 AND 5);
