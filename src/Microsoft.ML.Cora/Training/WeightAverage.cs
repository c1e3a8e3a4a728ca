using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Training;

/// <summary>
/// An exponential moving average of a module's floating-point state (<see cref="TrainingOptions.Ema"/>): after each optimiser step
/// average = d x average + (1 - d) x weights, with d = min(decay, (1 + n) / (10 + n)) at the n-th update, so that the first steps,
/// far from where training ends, fade quickly. Validation and the kept weights read the average (<see cref="Swapped"/>); training
/// goes on from the weights themselves.
/// </summary>
internal sealed class WeightAverage : IDisposable
{
    private readonly double _decay;
    private readonly List<(string name, Tensor live, Tensor average)> _pairs;

    public WeightAverage(nn.Module module, double decay)
    {
        if (!(decay > 0 && decay < 1)) throw new ArgumentOutOfRangeException(nameof(decay), decay, "The decay of the weight average must lie strictly between 0 and 1.");
        _decay = decay;
        using var _ = no_grad();
        _pairs = module.state_dict().Where(kv => kv.Value.is_floating_point())
            .Select(kv => (kv.Key, kv.Value, kv.Value.detach().clone())).ToList();
    }

    /// <summary>Updates folded in so far (saved with a checkpoint: the decay's ramp continues where it stopped).</summary>
    public long Updates { get; private set; }

    /// <summary>The decay the next update uses.</summary>
    public double NextDecay => Math.Min(_decay, (2.0 + Updates) / (11.0 + Updates));

    /// <summary>Starts the average afresh from the module's current weights (a fresh run, once its starting weights are set).</summary>
    public void Reset()
    {
        using var _ = no_grad();
        foreach (var (_, live, average) in _pairs) average.copy_(live);
        Updates = 0;
    }

    /// <summary>Folds the module's current weights into the average.</summary>
    public void Update()
    {
        double d = NextDecay;
        using var _ = no_grad();
        foreach (var (_, live, average) in _pairs) average.mul_(d).add_(live, alpha: 1 - d);
        Updates++;
    }

    /// <summary>The averaged tensors by state-dict name (for a checkpoint).</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> State => _pairs.Select(p => KeyValuePair.Create(p.name, p.average));

    /// <summary>Restores an average saved with <see cref="State"/> after <paramref name="updates"/> updates.</summary>
    public void Load(Func<string, Tensor> read, long updates)
    {
        using var _ = no_grad();
        foreach (var (name, _, average) in _pairs) { using var v = read(name); average.copy_(v); }
        Updates = updates;
    }

    /// <summary>Puts the average into the module until the returned scope ends, then the weights back.</summary>
    public IDisposable Swapped()
    {
        using var _ = no_grad();
        var kept = _pairs.Select(p => p.live.detach().clone()).ToList();
        foreach (var (_, live, average) in _pairs) live.copy_(average);
        return new Scope(this, kept);
    }

    private sealed class Scope(WeightAverage owner, List<Tensor> kept) : IDisposable
    {
        public void Dispose()
        {
            using var _ = no_grad();
            for (int i = 0; i < kept.Count; i++) { owner._pairs[i].live.copy_(kept[i]); kept[i].Dispose(); }
            kept.Clear();
        }
    }

    public void Dispose()
    {
        foreach (var (_, _, average) in _pairs) average.Dispose();
    }
}
