using Microsoft.ML;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Cora.Training;

namespace Cora.Cli;

/// <summary>
/// Progress: typed training events (<see cref="TrainingProgress"/>) as one updating line on a terminal, plain lines when
/// redirected; Cora's other messages (MF epochs, validations) come from <c>mlContext.Log</c> (source "Cora", Info).
/// </summary>
internal sealed class ProgressPrinter : IDisposable
{
    private readonly TextWriter _out;
    private readonly bool _tty;
    private bool _open;
    public ProgressPrinter(TextWriter o) { _out = o; _tty = ReferenceEquals(o, Console.Out) && !Console.IsOutputRedirected; }

    /// <summary>Listens to the context's log and to the trainer's typed progress.</summary>
    public void Attach(MLContext ml, CoraTrainer.Options options)
    {
        // Steps arrive as typed progress (every step, below); the log's copies of some of them are left out here.
        ml.Log += (_, e) => { if (e.Source == "Cora" && e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Info && !e.RawMessage.StartsWith("Cora step ", StringComparison.Ordinal)) Line(e.RawMessage); };
        var previous = options.Progress;
        options.Progress = new Sink(p => { previous?.Report(p); Step(p); });
    }

    // CORA_TRACE_MEMORY=1 appends the process's resident memory to every progress line (for memory reports).
    private static readonly bool TraceMemory = Environment.GetEnvironmentVariable("CORA_TRACE_MEMORY") == "1";
    private static string Memory() => TraceMemory ? $" [rss {Environment.WorkingSet >> 20} MiB, managed {GC.GetTotalMemory(false) >> 20} MiB]" : "";

    public void Step(TrainingProgress p)
    {
        lock (this)
        {
            if (_tty) { var s = p.ToString() + Memory(); int w = Math.Max(20, Console.WindowWidth - 1); _out.Write("\r" + (s.Length > w ? s[..w] : s.PadRight(w))); _open = true; }
            else _out.WriteLine(p.ToString() + Memory());
        }
    }

    public void Line(string s)
    {
        lock (this) { if (_open) { _out.WriteLine(); _open = false; } _out.WriteLine(s + Memory()); }
    }

    public void Done() { lock (this) if (_open) { _out.WriteLine(); _open = false; } }
    public void Dispose() => Done();

    private sealed class Sink : IProgress<TrainingProgress>
    {
        private readonly Action<TrainingProgress> _a;
        public Sink(Action<TrainingProgress> a) => _a = a;
        public void Report(TrainingProgress value) => _a(value);
    }
}
