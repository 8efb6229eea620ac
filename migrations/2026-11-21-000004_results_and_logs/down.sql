DROP TABLE logfiles;
DROP TABLE merge_accumulators;
DROP TABLE task_results;
DROP TABLE pages;
DROP TABLE estimators;
DROP TABLE inputs;
