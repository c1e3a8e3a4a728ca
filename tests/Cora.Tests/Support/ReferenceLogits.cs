using System.Globalization;

namespace Cora.Tests;

/// <summary>A llama2.c reference file: the prompt, its token ids, and per position the input, argmax and logits.</summary>
public sealed class ReferenceLogits
{
    public string Prompt = "";
    public int[] PromptIds = Array.Empty<int>();
    public List<(int pos, int input, int argmax, float[] logits)> Rows = new();

    public static ReferenceLogits Read(string path)
    {
        var r = new ReferenceLogits();
        foreach (var line in File.ReadLines(path))
        {
            if (line.StartsWith("# prompt="))
            {
                int t = line.LastIndexOf(" tokens(with BOS)=", StringComparison.Ordinal);
                r.Prompt = line.Substring("# prompt=\"".Length, t - "# prompt=\"".Length - 1);
                r.PromptIds = line[(t + " tokens(with BOS)=".Length)..].Split(',').Select(int.Parse).ToArray();
            }
            else if (!line.StartsWith('#') && line.Length > 0)
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                r.Rows.Add((int.Parse(f[0]), int.Parse(f[1]), int.Parse(f[2]),
                    f.Skip(3).Select(x => float.Parse(x, CultureInfo.InvariantCulture)).ToArray()));
            }
        }
        return r;
    }
}
