using Microsoft.ML.Cora.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Runtime;

/// <summary>
/// Early stopping's "best weights so far", shared by the MF stage and the LLM-based trainer. The snapshot is kept in a temporary
/// safetensors file, not in memory: for CoRA's 42M-parameter generator that is 168 MB of RAM not held for the whole run.
/// </summary>
internal sealed class BestSnapshot : IDisposable
{
    private readonly string _path = ScratchSpace.NewFile("best", ".safetensors");
    public double Score { get; private set; } = double.NegativeInfinity;
    public int Step { get; private set; }
    public bool HasState => File.Exists(_path);
    /// <summary>Where the snapshot lives (for checkpoints to copy).</summary>
    public string FilePath => _path;

    /// <summary>Keeps <paramref name="module"/>'s state when <paramref name="score"/> beats the best so far; true when it did.</summary>
    public bool Offer(double score, nn.Module module, int step)
    {
        if (double.IsNaN(score) || score <= Score) return false;
        SafetensorsFile.Write(_path, module.state_dict());
        Score = score; Step = step;
        return true;
    }

    /// <summary>Takes over a snapshot written earlier (a resumed run's best).</summary>
    public void Adopt(string file, double score, int step)
    {
        File.Copy(file, _path, overwrite: true);
        Score = score; Step = step;
    }

    /// <summary>Copies the best state back into <paramref name="module"/> (no-op when nothing was kept).</summary>
    public void Restore(nn.Module module)
    {
        if (!HasState) return;
        var f = SafetensorsFile.Open(_path);
        using var _ = torch.no_grad();
        foreach (var (k, t) in module.state_dict()) { using var v = f.Read(k); t.copy_(v); }
    }

    public void Dispose() { try { File.Delete(_path); } catch (IOException) { } }
}
