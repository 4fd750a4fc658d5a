using System.Diagnostics;
using Platform.Api.Scheduling;

// Scheduler v1 throughput: 5,000 simulated nodes, 100,000 instances (10,000 apps x 10 replicas of
// 256 MiB / 100 m), placed from scratch; five runs, the median and the spread are printed.
// Usage: dotnet run -c Release --project bench/SchedulerBench [nodes] [apps] [replicas] [--full-scan]
var nodeCount = args.Length > 0 ? int.Parse(args[0]) : 5_000;
var apps = args.Length > 1 ? int.Parse(args[1]) : 10_000;
var replicas = args.Length > 2 ? int.Parse(args[2]) : 10;
var fullScan = args.Contains("--full-scan");   // score every node per placement: the baseline the sampling is measured against
var requests = Enumerable.Range(0, apps).Select(_ => new PlacementRequest(Guid.NewGuid(), replicas, 256, 100)).ToList();

var rates = new List<double>();
for (var run = 0; run < 6; run++)
{
    // 64 GiB / 16 cores per node: 100,000 x 256 MiB fills about 8 % of the cluster's memory.
    var nodes = Enumerable.Range(0, nodeCount).Select(i => new NodeCapacity($"node-{i:D5}", 65_536, 16_000)).ToList();
    var scheduler = fullScan ? new Scheduler(nodes, new Random(run)) { SampleSize = nodeCount } : new Scheduler(nodes, new Random(run));
    var sw = Stopwatch.StartNew();
    var (placed, unplaced) = scheduler.Place(requests);
    sw.Stop();
    var spread = placed.GroupBy(p => p.App).Average(g => g.Select(p => p.Node).Distinct().Count());
    if (run == 0)
    {
        Console.WriteLine($"warm-up: {placed.Count:N0} placed, {unplaced.Sum(u => u.Count):N0} unplaced, {sw.Elapsed.TotalMilliseconds:N0} ms");
        continue;
    }
    rates.Add(placed.Count / sw.Elapsed.TotalSeconds);
    Console.WriteLine($"run {run}: {placed.Count:N0} placements in {sw.Elapsed.TotalMilliseconds:N0} ms = {placed.Count / sw.Elapsed.TotalSeconds:N0}/s; " +
                      $"distinct nodes per app {spread:F2} of {replicas}; sample {scheduler.SampleSize} nodes per placement");
}
rates.Sort();
Console.WriteLine();
Console.WriteLine($"| nodes | instances | median placements/s | min | max | goal |");
Console.WriteLine($"|---|---|---|---|---|---|");
Console.WriteLine($"| {nodeCount:N0} | {apps * replicas:N0} | {rates[rates.Count / 2]:N0} | {rates[0]:N0} | {rates[^1]:N0} | ≥ 3,750/s |");
