# bench/plot.gp - delivered vs offered rate, one line per contender; called
# by bench/run:
#   gnuplot -e "datafile='plot.dat'; outfile='results.png'" bench/plot.gp
# datafile: one block per contender (separated by two blank lines), a
# header line with its name, then "offered median min max" rows.
set terminal pngcairo size 900,600 noenhanced
set output outfile
set title "heprouter bench: delivered vs offered (median, min-max bars)"
set xlabel "offered (packets/s)"
set ylabel "delivered (packets/s)"
set key top left
set grid
set format x "%.0s%c"
set format y "%.0s%c"
stats datafile using 1 nooutput
set xrange [0:STATS_max * 1.05]
set yrange [0:STATS_max * 1.05]
plot x title "offered = delivered" with lines dashtype 2 linecolor "gray", \
     for [i=0:STATS_blocks - 1] datafile index i using 1:2:3:4 with yerrorlines title columnheader(1)
