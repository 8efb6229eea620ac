DROP TABLE tasks;
DROP TABLE simulations;
