using System.Diagnostics;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Runtime;

/// <summary>
/// Wall time by phase of the model's work, accumulated while attached to a model (<see cref="CoraModel.Profile"/>); used by
/// <c>cora bench --profile</c>. On the CPU libtorch runs synchronously, so the split is exact; on CUDA give the device
/// (<see cref="SynchronizeOn"/>): each phase then waits for its kernels before its clock stops (which also keeps the host from
/// running ahead, so the profiled total can exceed an unprofiled step).
/// </summary>
internal sealed class PhaseProfile
{
    private readonly Dictionary<string, double> _seconds = new();
    private readonly List<string> _order = new();
    private readonly object _gate = new();

    /// <summary>The device whose queued work each phase waits for before it is timed (null: none; the CPU needs none).</summary>
    public Device? SynchronizeOn { get; init; }

    /// <summary>Seconds per phase in first-seen order.</summary>
    public IReadOnlyList<(string phase, double seconds)> Phases
    {
        get { lock (_gate) return _order.Select(p => (p, _seconds[p])).ToList(); }
    }

    public void Add(string phase, double seconds)
    {
        lock (_gate)
        {
            if (!_seconds.ContainsKey(phase)) { _seconds[phase] = 0; _order.Add(phase); }
            _seconds[phase] += seconds;
        }
    }

    public void Clear() { lock (_gate) { _seconds.Clear(); _order.Clear(); } }

    /// <summary>Times the enclosed work as <paramref name="phase"/> (a null profile costs nothing).</summary>
    public static Timer Time(PhaseProfile? profile, string phase) => new(profile, phase);

    public readonly struct Timer : IDisposable
    {
        private readonly PhaseProfile? _p; private readonly string _phase; private readonly long _start;
        public Timer(PhaseProfile? p, string phase) { _p = p; _phase = phase; _start = p is null ? 0 : Stopwatch.GetTimestamp(); }
        public void Dispose()
        {
            if (_p is null) return;
            if (_p.SynchronizeOn is { } device) MachineInfo.Synchronize(device);
            _p.Add(_phase, Stopwatch.GetElapsedTime(_start).TotalSeconds);
        }
    }
}
