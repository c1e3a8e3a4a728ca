using Microsoft.ML.Cora.Runtime;

namespace Cora.Tests;

/// <summary>The glibc mmap threshold is set when Cora is first used (Linux with glibc, unless the user set it).</summary>
[TestClass]
public class NativeMemoryTests
{
    [TestMethod]
    public void TheThresholdIsSetOnceCoraIsUsed()
    {
        if (!OperatingSystem.IsLinux()) Assert.Inconclusive("glibc's mallopt exists on Linux only.");
        if (Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is not null)
        {
            Assert.IsFalse(NativeMemory.Applied, "a threshold the user set is left alone");
            return;
        }
        Assert.IsTrue(NativeMemory.Applied, "the module initializer set the threshold");
    }
}
